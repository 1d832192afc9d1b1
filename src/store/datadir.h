/*
 * datadir.h — the data directory and opening the stores in it.
 *
 * Layout (ARCHITECTURE.md): leaky.db (SQLite WAL), buckets/ (LMDB),
 * events/, secrets/.  The directory is created mode 0700 with its parents.
 * lt_storage_open is shared by leakyd and `leakyctl init` so both create
 * and migrate the same way.
 */
#ifndef LT_STORE_DATADIR_H
#define LT_STORE_DATADIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define LT_DATADIR_ERR_MAX 512

struct sqlite3;

/* Create dir (and parents) mode 0700 if missing; LT_EIO with err if it
 * cannot be made or is not a directory. */
enum lt_err lt_datadir_prepare(const char *dir, char *err);

/* dir + "/" + name into out; LT_ETOOBIG if it does not fit. */
enum lt_err lt_datadir_path(const char *dir, const char *name, char *out, size_t cap);

/* Open leaky.db under dir (creating it) and migrate it.  *from and *to: schema
 * versions before and after. */
enum lt_err lt_storage_open_db(const char *dir, int sync, int busy_ms, struct sqlite3 **out,
			       int *from, int *to, char *err);

#endif
