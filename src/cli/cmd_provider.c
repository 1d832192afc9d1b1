/*
 * cmd_provider.c — leakyctl provider list | set-credential | delete-credential.
 *
 * `provider list` reads the configuration leakyctl loaded (-c or
 * LEAKYD_CONFIG): each [provider.NAME] with its format, base URL, credential
 * source and whether DATA_DIR/secrets/provider-NAME.cred exists; each
 * [model.NAME] with its provider, upstream id, kind and prices; and stored
 * credentials of providers the configuration does not name.
 *
 * `provider set-credential` reads one line from standard input (the
 * terminal's echo is turned off when it is one) and stores it with
 * lt_credential_store (provider/credential.h): encrypted under
 * DATA_DIR/secrets/master.key, never printed.  leakyd loads stored
 * credentials at start and on SIGHUP, so the command says to send one.
 *
 * Invariants: the key lives in one stack buffer that is wiped before
 * return; nothing here writes leaky.db or the bucket store.  A provider
 * name is checked with the configuration's rules (1 to 31 of letters,
 * digits, '_' and '-', stored lower-case) before it becomes part of a path.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "provider/credential.h"
#include "provider/registry.h"
#include "store/datadir.h"

/* The longest key leakyd can use (registry.h keeps it in LT_CREDENTIAL_MAX
 * bytes, NUL included), and within what credential.c stores. */
#define KEY_MAX                                                                                    \
	(LT_CREDENTIAL_MAX - 1 < LT_CREDENTIAL_VALUE_MAX ? LT_CREDENTIAL_MAX - 1                   \
							 : LT_CREDENTIAL_VALUE_MAX)
#define KEY_BUF (KEY_MAX + 2) /* the key, a trailing '\r' and the NUL */
#define UNCONFIGURED_MAX 64   /* stored credentials without a section, listed */

static const char *const format_names[] = {"openai", "gemini", "qwen"};

/* arg as a provider name, lower-cased into out; EX_DATAERR if it breaks the
 * naming rules of [provider.NAME] (config.c). */
static int provider_name(const char *cmd, const char *arg, char out[LT_CFG_PROVIDER_NAME_MAX])
{
	size_t n = strlen(arg);
	bool ok = n >= 1 && n <= LT_CFG_PROVIDER_NAME_MAX - 1;
	for (size_t i = 0; ok && i < n; i++) {
		char c = arg[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
		out[i] = c;
	}
	if (!ok) {
		fprintf(stderr,
			"leakyctl %s: invalid provider name '%.64s' (1 to %d letters, digits, '_' "
			"or '-')\n",
			cmd, arg, LT_CFG_PROVIDER_NAME_MAX - 1);
		return EX_DATAERR;
	}
	out[n] = '\0';
	return 0;
}

/* DATA_DIR/secrets into out. */
static int secrets_dir(struct lt_cli *cli, const char *cmd, char *out, size_t cap)
{
	if (lt_datadir_path(cli->data_dir, "secrets", out, cap)) {
		fprintf(stderr, "leakyctl %s: data directory path too long\n", cmd);
		return EX_USAGE;
	}
	return 0;
}

/* Is there a stored credential file for provider `name`? */
static bool cred_stored(const char *sdir, const char *name)
{
	char path[4096];
	struct stat st;
	int n = snprintf(path, sizeof path, "%s/provider-%s.cred", sdir, name);
	return n > 0 && (size_t)n < sizeof path && lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The sysexits code for an error of credential.c / secret_file.c. */
static int cred_fail(const char *cmd, enum lt_err e, const char *err)
{
	fprintf(stderr, "leakyctl %s: %s\n", cmd, err[0] ? err : lt_strerror(e));
	switch (e) {
	case LT_EINVAL:
	case LT_ECORRUPT:
	case LT_ENOTFOUND: return EX_DATAERR;
	case LT_EDENIED: return EX_NOPERM;
	case LT_ETOOBIG: return EX_USAGE;
	case LT_ENOMEM: return EX_OSERR;
	default: return EX_IOERR;
	}
}

/* ---- provider list ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* Stored credentials of providers that have no section: one line each. */
static void list_unconfigured(const struct lt_config *cfg, const char *sdir)
{
	DIR *d = opendir(sdir);
	if (!d)
		return;
	char names[UNCONFIGURED_MAX][LT_CFG_PROVIDER_NAME_MAX];
	size_t n = 0, more = 0;
	const struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *f = de->d_name;
		size_t len = strlen(f);
		if (len <= 14 || strncmp(f, "provider-", 9) || strcmp(f + len - 5, ".cred"))
			continue;
		size_t nl = len - 14;
		if (nl >= LT_CFG_PROVIDER_NAME_MAX)
			continue;
		char name[LT_CFG_PROVIDER_NAME_MAX];
		memcpy(name, f + 9, nl);
		name[nl] = '\0';
		if (lt_config_provider(cfg, name) || !cred_stored(sdir, name))
			continue;
		if (n < UNCONFIGURED_MAX)
			memcpy(names[n++], name, nl + 1);
		else
			more++;
	}
	closedir(d);
	qsort(names, n, sizeof names[0], cmp_str);
	for (size_t i = 0; i < n; i++)
		printf("unconfigured %s stored_secret=yes\n", names[i]);
	if (more)
		printf("unconfigured ... and %zu more\n", more);
}

int lt_cmd_provider_list(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "provider list";
	char *pos[1], sdir[4096];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 0, 0, pos, &npos);
	if (rc || (rc = secrets_dir(cli, cmd, sdir, sizeof sdir)))
		return rc;
	const struct lt_config *cfg = &cli->cfg;
	if (!cfg->nproviders)
		fprintf(stderr,
			"leakyctl %s: no [provider.NAME] sections in %s; see leakyd.conf(5)\n", cmd,
			cli->config_path ? cli->config_path
					 : "the built-in defaults (no -c or LEAKYD_CONFIG)");
	for (size_t i = 0; i < cfg->nproviders; i++) {
		const struct lt_cfg_provider *p = &cfg->providers[i];
		printf("provider %s format=%s base_url=%s credential=%s stored_secret=%s "
		       "default_model=%s passthrough_models=%s",
		       p->name, format_names[p->format], p->base_url, p->credential,
		       cred_stored(sdir, p->name) ? "yes" : "no",
		       p->default_model[0] ? p->default_model : "-",
		       p->passthrough_models ? "yes" : "no");
		if (p->passthrough_models)
			printf(" input=%lld cached_input=%lld output=%lld",
			       (long long)p->price_input, (long long)p->price_cached_input,
			       (long long)p->price_output);
		putchar('\n');
	}
	for (size_t i = 0; i < cfg->nmodels; i++) {
		const struct lt_cfg_model *m = &cfg->models[i];
		printf("model %s provider=%s upstream=%s kind=%s input=%lld cached_input=%lld "
		       "output=%lld context_window=%lld max_output=%lld\n",
		       m->name, m->provider, m->upstream[0] ? m->upstream : m->name,
		       m->kind == LT_MODEL_EMBEDDING ? "embedding" : "chat",
		       (long long)m->price_input, (long long)m->price_cached_input,
		       (long long)m->price_output, (long long)m->context_window,
		       (long long)m->max_output);
	}
	list_unconfigured(cfg, sdir);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "leakyctl %s: cannot write: %s\n", cmd, strerror(errno));
		return EX_IOERR;
	}
	return 0;
}

/* ---- provider set-credential / delete-credential ---- */

/* One line of standard input into key (KEY_BUF bytes; at most KEY_MAX
 * kept, the line end — "\n" or "\r\n" — removed).  With a terminal, a prompt
 * goes to stderr and echo is off while reading. */
static int read_key(const char *cmd, const char *name, char key[KEY_BUF])
{
	struct termios saved;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (tty) {
		struct termios quiet = saved;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		fprintf(stderr, "API key of provider %s (not echoed): ", name);
		fflush(stderr);
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	size_t n = 0;
	bool overflow = false, nul = false;
	int c;
	while ((c = getc(stdin)) != EOF && c != '\n') {
		if (n < KEY_BUF - 1)
			key[n++] = (char)c;
		else
			overflow = true; /* read to the end of the line, keep no more */
		if (c == '\0')
			nul = true;
	}
	bool io_error = ferror(stdin) != 0;
	if (tty) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fputc('\n', stderr);
	}
	if (!overflow && n && key[n - 1] == '\r')
		n--;
	key[n] = '\0';
	if (io_error) {
		fprintf(stderr, "leakyctl %s: cannot read standard input\n", cmd);
		return EX_IOERR;
	}
	if (overflow || n > KEY_MAX) {
		fprintf(stderr, "leakyctl %s: the key is longer than %d bytes\n", cmd, KEY_MAX);
		return EX_DATAERR;
	}
	if (n == 0) {
		fprintf(stderr, "leakyctl %s: no key on standard input (one line expected)\n", cmd);
		return EX_DATAERR;
	}
	if (nul) {
		fprintf(stderr, "leakyctl %s: a credential must not contain control characters\n",
			cmd);
		return EX_DATAERR;
	}
	return 0;
}

int lt_cmd_provider_set_credential(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "provider set-credential";
	bool force = false;
	const struct lt_cli_opt opts[] = {{"--force", &force, NULL}, {NULL, NULL, NULL}};
	char *pos[1], name[LT_CFG_PROVIDER_NAME_MAX], sdir[4096], err[LT_SECRET_ERR_MAX] = "";
	char key[KEY_BUF];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 1, 1, pos, &npos);
	if (rc || (rc = provider_name(cmd, pos[0], name)) ||
	    (rc = secrets_dir(cli, cmd, sdir, sizeof sdir)))
		return rc;
	const struct lt_cfg_provider *p = lt_config_provider(&cli->cfg, name);
	if (!p && !force) {
		fprintf(stderr,
			"leakyctl %s: no [provider.%s] section in %s (add one, or use --force to "
			"store the key anyway)\n",
			cmd, name,
			cli->config_path ? cli->config_path
					 : "the built-in defaults (no -c or LEAKYD_CONFIG)");
		return EX_DATAERR;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "leakyctl %s: libsodium failed to initialise\n", cmd);
		return EX_SOFTWARE;
	}
	if ((rc = read_key(cmd, name, key)))
		goto out;
	enum lt_err e = lt_credential_store(sdir, name, key, err);
	if (e) {
		rc = cred_fail(cmd, e, err);
		goto out;
	}
	printf("stored the credential of provider %s in %s/provider-%s.cred (encrypted with "
	       "%s/master.key)\n",
	       name, sdir, name, sdir);
	if (p && strcmp(p->credential, "secret"))
		printf("note: [provider.%s] has credential = %s; set credential = secret for "
		       "leakyd to use the stored key\n",
		       name, p->credential);
	printf("send SIGHUP to a running leakyd to load it (kill -HUP <pid>)\n");
out:
	sodium_memzero(key, sizeof key);
	return rc;
}

int lt_cmd_provider_delete_credential(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "provider delete-credential";
	char *pos[1], name[LT_CFG_PROVIDER_NAME_MAX], sdir[4096], err[LT_SECRET_ERR_MAX] = "";
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 1, 1, pos, &npos);
	if (rc || (rc = provider_name(cmd, pos[0], name)) ||
	    (rc = secrets_dir(cli, cmd, sdir, sizeof sdir)))
		return rc;
	enum lt_err e = lt_credential_delete(sdir, name, err);
	if (e == LT_ENOTFOUND) {
		fprintf(stderr, "leakyctl %s: no stored credential for provider %s\n", cmd, name);
		return EX_DATAERR;
	}
	if (e)
		return cred_fail(cmd, e, err);
	printf("deleted the stored credential of provider %s\n", name);
	const struct lt_cfg_provider *p = lt_config_provider(&cli->cfg, name);
	if (p && !strcmp(p->credential, "secret"))
		printf("note: [provider.%s] has credential = secret; after a reload leakyd calls "
		       "it without a key\n",
		       name);
	printf("send SIGHUP to a running leakyd to apply it (kill -HUP <pid>)\n");
	return 0;
}
