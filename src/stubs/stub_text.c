/*
 * stub_text.c — the stubs' deterministic content (pure: no I/O, no clock).
 *
 * Same request text, same answer bytes: FNV-1a 64 of the model and every
 * (role, text) pair seeds an xorshift64* generator that picks the words.
 * Output length n = min(max_tokens if given, 8 + hash % 25) tokens and the
 * content is exactly 4n ASCII bytes, so lt_token_estimate (one token per
 * four bytes) counts it as n: the gateway's estimates and the stubs' usage
 * agree.  Prompt tokens are lt_token_estimate of the prompt text
 * concatenated.  See stub_int.h for the usage rules.
 */
#include <math.h>
#include <string.h>

#include "provider/usage.h"
#include "stubs/stub_int.h"

uint64_t lt_stub_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static uint64_t splitmix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

void lt_stub_rng_seed(struct lt_stub_rng *r, uint64_t seed)
{
	r->s = splitmix64(seed);
	if (!r->s)
		r->s = UINT64_C(0x2545f4914f6cdd1d);
}

uint64_t lt_stub_rng_next(struct lt_stub_rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * UINT64_C(0x2545f4914f6cdd1d);
}

uint64_t lt_stub_rng_below(struct lt_stub_rng *r, uint64_t n)
{
	if (!n)
		return 0;
	/* Rejection keeps it uniform; the loop almost never repeats. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t v;
	do
		v = lt_stub_rng_next(r);
	while (v >= limit);
	return v % n;
}

bool lt_stub_rng_pct(struct lt_stub_rng *r, int64_t pct)
{
	if (pct <= 0)
		return false;
	if (pct >= 100)
		return true;
	return lt_stub_rng_below(r, 100) < (uint64_t)pct;
}

const char *lt_stub_provider_label(enum lt_stub_provider p)
{
	switch (p) {
	case LT_STUB_OPENAI: return "OpenAI";
	case LT_STUB_QWEN: return "Qwen";
	case LT_STUB_GEMINI: return "Gemini";
	}
	return "Stub";
}

void lt_stub_prompt_init(struct lt_stub_prompt *p, const char *model)
{
	lt_buf_init(&p->text, NULL, 0, LT_STUB_MAX_BODY);
	p->hash = lt_stub_fnv1a(LT_STUB_FNV_BASIS, model, strlen(model) + 1);
}

enum lt_err lt_stub_prompt_add(struct lt_stub_prompt *p, const char *role, const char *text,
			       size_t len)
{
	const char *r = role ? role : "";
	p->hash = lt_stub_fnv1a(p->hash, r, strlen(r) + 1);
	p->hash = lt_stub_fnv1a(p->hash, text, len);
	p->hash = lt_stub_fnv1a(p->hash, "", 1);
	return lt_buf_append(&p->text, text, len);
}

void lt_stub_prompt_release(struct lt_stub_prompt *p)
{
	lt_buf_release(&p->text);
}

int64_t lt_stub_natural_tokens(uint64_t hash)
{
	return 8 + (int64_t)(hash % 25);
}

int64_t lt_stub_cached_tokens(int64_t prompt_tokens)
{
	if (prompt_tokens < 1024)
		return 0;
	return prompt_tokens / 2 / 128 * 128;
}

int64_t lt_stub_reasoning_tokens(enum lt_stub_provider p, const char *model)
{
	switch (p) {
	case LT_STUB_OPENAI:
		return model[0] == 'o' && model[1] >= '0' && model[1] <= '9'
			       ? LT_STUB_REASONING_TOKENS
			       : 0;
	case LT_STUB_GEMINI: return strstr(model, "2.5") ? LT_STUB_REASONING_TOKENS : 0;
	case LT_STUB_QWEN: return 0;
	}
	return 0;
}

void lt_stub_usage_compute(enum lt_stub_provider p, const char *model,
			   const struct lt_stub_prompt *prompt, int64_t max_tokens,
			   struct lt_stub_usage *u)
{
	int64_t natural = lt_stub_natural_tokens(prompt->hash);
	u->prompt = lt_token_estimate(prompt->text.data ? prompt->text.data : "", prompt->text.len);
	u->cached = lt_stub_cached_tokens(u->prompt);
	u->cut = max_tokens > 0 && max_tokens < natural;
	u->output = u->cut ? max_tokens : natural;
	u->reasoning = lt_stub_reasoning_tokens(p, model);
}

static const char *const words[] = {
	"alpha",   "bright", "cedar",	"delta",   "ember",  "forest", "garden", "harbor",
	"island",  "jasper", "kettle",	"lantern", "meadow", "nectar", "orchid", "pebble",
	"quartz",  "river",  "summit",	"timber",  "umbra",  "valley", "willow", "yonder",
	"zephyr",  "amber",  "breeze",	"canyon",  "dune",   "echo",   "fable",	 "glacier",
	"horizon", "ivory",  "juniper", "kindle",  "lagoon", "marble", "north",	 "ocean",
	"prairie", "quill",  "ripple",	"sierra",  "tundra", "upland", "vista",	 "wander",
	"token",   "bucket", "leaky",	"stream",  "signal", "packet", "cipher", "ledger",
	"quota",   "window", "gateway", "router",  "cache",  "socket", "thread", "kernel",
};
#define NWORDS (sizeof words / sizeof words[0])

enum lt_err lt_stub_text_generate(enum lt_stub_provider p, uint64_t hash, int64_t n,
				  struct lt_buf *out)
{
	if (n <= 0)
		return LT_OK;
	size_t want = (size_t)n * 4;
	size_t start = out->len;
	struct lt_stub_rng rng;
	lt_stub_rng_seed(&rng, hash);
	lt_buf_puts(out, "Stubbed ");
	lt_buf_puts(out, lt_stub_provider_label(p));
	lt_buf_puts(out, " response");
	while (!out->err && out->len - start < want) {
		lt_buf_putc(out, ' ');
		lt_buf_puts(out, words[lt_stub_rng_below(&rng, NWORDS)]);
	}
	if (out->err)
		return out->err;
	out->len = start + want;
	out->data[out->len] = '\0';
	if (out->data[out->len - 1] == ' ')
		out->data[out->len - 1] = '.';
	return LT_OK;
}

void lt_stub_embedding(uint64_t seed, float *out, size_t dims)
{
	struct lt_stub_rng rng;
	lt_stub_rng_seed(&rng, seed);
	double sum = 0;
	for (size_t i = 0; i < dims; i++) {
		/* uniform in [-1, 1) from the top 53 bits */
		double v = (double)(lt_stub_rng_next(&rng) >> 11) * 0x1.0p-52 - 1.0;
		out[i] = (float)v;
		sum += (double)out[i] * (double)out[i];
	}
	if (!dims)
		return;
	if (sum <= 0) {
		out[0] = 1.0f;
		return;
	}
	double norm = sqrt(sum);
	for (size_t i = 0; i < dims; i++)
		out[i] = (float)((double)out[i] / norm);
}
