#!/bin/sh
# embed.sh SYMBOL FILE — print a C file defining `const char SYMBOL[]` holding
# FILE's bytes and a terminating NUL.  Used by the build for schema.sql and
# the OpenAPI document, so the binaries need no files at run time.
set -eu
sym=$1
file=$2
printf '/* Generated from %s by tools/embed.sh; do not edit. */\n' "$file"
printf 'const char %s[] = {\n' "$sym"
od -An -v -tx1 "$file" | sed -e 's/  */ /g' -e 's/^ //' -e 's/ $//' -e '/^$/d' \
	-e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
printf '0x00};\n'
