/*
 * version.h — the release version.  LT_GIT_REV comes from the build.
 */
#ifndef LT_VERSION_H
#define LT_VERSION_H

#define LT_VERSION "0.1.0"
#ifndef LT_GIT_REV
#define LT_GIT_REV "unknown"
#endif

#endif
