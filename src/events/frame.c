/*
 * frame.c — encode and decode one event-log record (frame.h), and CRC32C.
 *
 * Pure: no I/O, no allocation, no global mutable state (the CRC table is
 * const).  CRC32C runs on the SSE4.2 crc32 instruction when the CPU has it
 * (x86-64 only, asked through __builtin_cpu_supports on every call, which
 * reads a word libgcc fills at start-up), else on a 256-entry table; the
 * unit test compares both on every length and alignment.
 *
 * Decoding checks, in this order, so that a record whose header was damaged
 * is told from one that was cut short: magic (on the bytes present), then
 * body_len and the four field lengths (once the 44-byte header is there),
 * then completeness (LT_EAGAIN), then the CRC, then NULs in topic, type and
 * key.  The accepted set equals the encodable set, so decode followed by
 * encode gives back the same bytes.
 */
#include "events/frame.h"

#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define LT_CRC32C_HW 1
#endif

/* Bytes of the fixed part counted in body_len: crc + offset + time_ms +
 * event_id + the four lengths. */
#define BODY_FIXED (LT_EV_HEADER - 8)
#define BODY_MAX                                                                                   \
	((uint64_t)BODY_FIXED + LT_EV_TOPIC_MAX + LT_EV_TYPE_MAX + LT_EV_KEY_MAX +                 \
	 LT_EV_PAYLOAD_MAX)

static const uint32_t crc_table[256] = {
	0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c, 0x26a1e7e8,
	0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b, 0x4d43cfd0, 0xbf284cd3,
	0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b, 0xd7c45070,
	0x25afd373, 0x36ff2087, 0xc494a384, 0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54,
	0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29,
	0x33ed7d2a, 0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
	0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa, 0x30e349b1,
	0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
	0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a, 0x7da08661, 0x8fcb0562, 0x9c9bf696,
	0x6ef07595, 0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0,
	0x67dafa54, 0x95b17957, 0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c,
	0xfe53516f, 0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
	0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f, 0x3ac7f2eb,
	0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7, 0x61c69362, 0x93ad1061,
	0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789, 0xeb1fcbad,
	0x197448ae, 0x0a24bb5a, 0xf84f3859, 0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
	0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5,
	0xa55230e6, 0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
	0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c, 0x456cac67,
	0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043,
	0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c, 0x92a8fc17, 0x60c37f14, 0x73938ce0,
	0x81f80fe3, 0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db,
	0xf94ad42f, 0x0b21572c, 0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6,
	0x502036a5, 0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
	0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975, 0x0e330a81,
	0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d, 0x758fe5d6, 0x87e466d5,
	0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2, 0xff56bd19,
	0x0d3d3e1a, 0x1e6dcdee, 0xec064eed, 0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530,
	0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc,
	0x5a048dff, 0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
	0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540, 0x590ab964,
	0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
	0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee, 0x24aa3f05, 0xd6c1bc06, 0xc5914ff2,
	0x37faccf1, 0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9,
	0x4f48173d, 0xbd23943e, 0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a,
	0xc69f7b69, 0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
	0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

uint32_t lt_crc32c_sw(uint32_t crc, const void *data, size_t n)
{
	const uint8_t *p = data;
	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#ifdef LT_CRC32C_HW
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
							    size_t n)
{
	const uint8_t *p = data;
	uint64_t c = ~crc;
	while (n > 0 && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		n--;
	}
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		n -= 8;
	}
	while (n--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t lt_crc32c(uint32_t crc, const void *data, size_t n)
{
#ifdef LT_CRC32C_HW
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_hw(crc, data, n);
#endif
	return lt_crc32c_sw(crc, data, n);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A field of n bytes at p: present when n > 0, without NUL when nul_free. */
static bool field_ok(const char *p, size_t n, size_t max, bool nul_free)
{
	if (n > max || (n > 0 && !p))
		return false;
	return !nul_free || n == 0 || !memchr(p, '\0', n);
}

enum lt_err lt_ev_check(const struct lt_event *ev)
{
	if (!ev || ev->topic_len == 0)
		return LT_EINVAL;
	if (!field_ok(ev->topic, ev->topic_len, LT_EV_TOPIC_MAX, true) ||
	    !field_ok(ev->type, ev->type_len, LT_EV_TYPE_MAX, true) ||
	    !field_ok(ev->key, ev->key_len, LT_EV_KEY_MAX, true) ||
	    !field_ok(ev->payload, ev->payload_len, LT_EV_PAYLOAD_MAX, false))
		return LT_EINVAL;
	return LT_OK;
}

size_t lt_ev_size(const struct lt_event *ev)
{
	size_t n = LT_EV_HEADER;
	const size_t parts[] = {ev->topic_len, ev->type_len, ev->key_len, ev->payload_len};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		if (parts[i] > SIZE_MAX - n)
			return SIZE_MAX;
		n += parts[i];
	}
	return n;
}

static uint8_t *put_field(uint8_t *w, const char *p, size_t n)
{
	if (n > 0)
		memcpy(w, p, n);
	return w + n;
}

enum lt_err lt_ev_encode(const struct lt_event *ev, uint8_t *out, size_t cap, size_t *len)
{
	enum lt_err e = lt_ev_check(ev);
	if (e != LT_OK)
		return e;
	size_t size = lt_ev_size(ev);
	if (!out || cap < size)
		return LT_ETOOBIG;
	memcpy(out, LT_EV_MAGIC, 4);
	put32(out + 4, (uint32_t)(size - 8));
	put64(out + 12, ev->offset);
	put64(out + 20, (uint64_t)ev->time_ms);
	put64(out + 28, ev->event_id);
	out[36] = (uint8_t)ev->topic_len;
	out[37] = (uint8_t)ev->type_len;
	out[38] = (uint8_t)(ev->key_len & 0xff);
	out[39] = (uint8_t)(ev->key_len >> 8);
	put32(out + 40, (uint32_t)ev->payload_len);
	uint8_t *w = out + LT_EV_HEADER;
	w = put_field(w, ev->topic, ev->topic_len);
	w = put_field(w, ev->type, ev->type_len);
	w = put_field(w, ev->key, ev->key_len);
	put_field(w, ev->payload, ev->payload_len);
	put32(out + 8, lt_crc32c(0, out + 12, size - 12));
	*len = size;
	return LT_OK;
}

enum lt_err lt_ev_decode(const uint8_t *buf, size_t n, struct lt_event *ev, size_t *len)
{
	size_t m = n < 4 ? n : 4;
	if (m > 0 && memcmp(buf, LT_EV_MAGIC, m) != 0)
		return LT_ECORRUPT;
	if (n < 8)
		return LT_EAGAIN;
	uint32_t body = get32(buf + 4);
	if (body < BODY_FIXED + 1 || body > BODY_MAX)
		return LT_ECORRUPT;
	if (n < LT_EV_HEADER)
		return LT_EAGAIN;
	size_t topic_len = buf[36], type_len = buf[37];
	size_t key_len = (size_t)buf[38] | (size_t)buf[39] << 8;
	size_t payload_len = get32(buf + 40);
	if (topic_len == 0 || topic_len > LT_EV_TOPIC_MAX || type_len > LT_EV_TYPE_MAX ||
	    key_len > LT_EV_KEY_MAX || payload_len > LT_EV_PAYLOAD_MAX ||
	    (uint64_t)BODY_FIXED + topic_len + type_len + key_len + payload_len != body)
		return LT_ECORRUPT;
	size_t size = 8 + (size_t)body;
	if (n < size)
		return LT_EAGAIN;
	if (get32(buf + 8) != lt_crc32c(0, buf + 12, size - 12))
		return LT_ECORRUPT;
	const char *s = (const char *)buf + LT_EV_HEADER;
	if (memchr(s, '\0', topic_len + type_len + key_len))
		return LT_ECORRUPT;
	ev->offset = get64(buf + 12);
	ev->time_ms = (int64_t)get64(buf + 20);
	ev->event_id = get64(buf + 28);
	ev->topic = s;
	ev->topic_len = topic_len;
	ev->type = s + topic_len;
	ev->type_len = type_len;
	ev->key = ev->type + type_len;
	ev->key_len = key_len;
	ev->payload = ev->key + key_len;
	ev->payload_len = payload_len;
	*len = size;
	return LT_OK;
}
