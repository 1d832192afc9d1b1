// Compatibility: leakyd's OpenAI-compatible API (API.md §4) as the official
// `openai` npm SDK sees it.  One client, pointed at {LEAKYD_URL}/v1 with an
// API key, talks to three configured providers behind the gateway — openai,
// gemini (translated to and from generateContent) and qwen (DashScope
// compatible mode) — served by leakyd's built-in stubs, whose answers are
// deterministic for a given input ("Stubbed <Provider> response ...").
//
// Covered: chat completions non-stream and streamed (with and without
// stream_options.include_usage), the SDK's stream() helper, embeddings (the
// SDK's default base64 encoding and explicit floats), models.list and
// models.retrieve, and the SDK's error classes for 401, 404 and 429.
//
// Needs a running leakyd configured as tests/integration/test_compat_openai.py
// does: LEAKYD_URL (gateway base, e.g. http://127.0.0.1:8080), LEAKYD_API_KEY
// (an API key of any user) and LEAKYD_STUB_URL (the stubs' listener, for
// queuing fault plans and reading their request log); optionally
// LEAKYD_OPENAI_RETRY_ATTEMPTS.  That test starts both and runs
// `node --test openai.test.mjs` here.
// Without them the file registers a single `todo` test (not a skip, and not
// a pass), so a plain `node --test` in this directory stays meaningful.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const BASE = process.env.LEAKYD_URL;
const API_KEY = process.env.LEAKYD_API_KEY;
const STUB_URL = process.env.LEAKYD_STUB_URL;
// Optional: [provider.openai] retry_attempts, to check how often the gateway
// called the stub before giving a 429 back.
const RETRY_ATTEMPTS = Number(process.env.LEAKYD_OPENAI_RETRY_ATTEMPTS || 0);

// model -> the provider it is configured under, and the label the stub puts
// at the start of every answer.
const CHAT_MODELS = [
  { model: 'gpt-4o-mini', provider: 'openai', label: 'OpenAI' },
  { model: 'gemini-2.0-flash', provider: 'gemini', label: 'Gemini' },
  { model: 'qwen-plus', provider: 'qwen', label: 'Qwen' },
];
const EMBEDDING_MODEL = { model: 'text-embedding-3-small', provider: 'openai' };

const messagesFor = (model) => [
  { role: 'system', content: 'You are a terse assistant.' },
  { role: 'user', content: `Compatibility check for ${model}: say something short.` },
];

function client(apiKey = API_KEY) {
  // maxRetries 0: every status the gateway answers reaches the test as is.
  return new OpenAI({ baseURL: `${BASE}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });
}

// The usage object of a chat completion: OpenAI's fields, all integers,
// total = prompt + completion, details within their totals.
function checkUsage(u, what) {
  const s = JSON.stringify(u);
  assert.ok(u && typeof u === 'object', `${what}: usage missing: ${s}`);
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(u[k]) && u[k] >= 0, `${what}: usage.${k}: ${s}`);
  }
  assert.ok(u.prompt_tokens > 0, `${what}: prompt_tokens is 0: ${s}`);
  assert.ok(u.completion_tokens > 0, `${what}: completion_tokens is 0: ${s}`);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens, `${what}: total: ${s}`);
  const cached = u.prompt_tokens_details?.cached_tokens;
  assert.ok(Number.isInteger(cached) && cached >= 0 && cached <= u.prompt_tokens,
    `${what}: prompt_tokens_details.cached_tokens: ${s}`);
  const reasoning = u.completion_tokens_details?.reasoning_tokens;
  assert.ok(Number.isInteger(reasoning) && reasoning >= 0 && reasoning <= u.completion_tokens,
    `${what}: completion_tokens_details.reasoning_tokens: ${s}`);
}

// The stubs' visible answer is exactly 4 bytes per visible output token.
function checkUsageMatchesContent(u, content, what) {
  const visible = u.completion_tokens - u.completion_tokens_details.reasoning_tokens;
  assert.equal(Buffer.byteLength(content, 'utf8'), 4 * visible,
    `${what}: ${visible} visible completion tokens but ${JSON.stringify(content)}`);
}

async function nonStream(c, model) {
  return c.chat.completions.create({ model, messages: messagesFor(model) });
}

// Drain a streamed completion: the chunks, the concatenated content deltas
// and the chunks that carry a usage object.
async function collect(stream) {
  const chunks = [];
  let content = '';
  for await (const chunk of stream) {
    chunks.push(chunk);
    for (const ch of chunk.choices ?? []) {
      if (typeof ch.delta?.content === 'string') content += ch.delta.content;
    }
  }
  const usageChunks = chunks.filter((ch) => ch.usage !== null && ch.usage !== undefined);
  return { chunks, content, usageChunks };
}

function checkChunks(chunks, model, what) {
  assert.ok(chunks.length >= 2, `${what}: only ${chunks.length} chunk(s)`);
  const id = chunks[0].id;
  assert.ok(typeof id === 'string' && id.length > 0, `${what}: chunk id ${JSON.stringify(id)}`);
  for (const ch of chunks) {
    assert.equal(ch.object, 'chat.completion.chunk', `${what}: ${JSON.stringify(ch)}`);
    assert.equal(ch.id, id, `${what}: chunk ids differ: ${JSON.stringify(ch)}`);
    assert.ok(typeof ch.model === 'string' && ch.model.startsWith(model),
      `${what}: chunk model: ${JSON.stringify(ch)}`);
    assert.ok(Array.isArray(ch.choices), `${what}: choices: ${JSON.stringify(ch)}`);
  }
  const finishes = chunks.flatMap((ch) => ch.choices)
    .map((c) => c.finish_reason).filter((f) => f !== null && f !== undefined);
  assert.deepEqual(finishes, ['stop'], `${what}: finish_reason values`);
  const roles = chunks.flatMap((ch) => ch.choices).map((c) => c.delta?.role).filter(Boolean);
  assert.ok(roles.length >= 1 && roles.every((r) => r === 'assistant'), `${what}: roles ${roles}`);
}

async function stubCall(path, body, method = 'POST') {
  const r = await fetch(new URL(path, STUB_URL), {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path} -> ${r.status}: ${text}`);
  return text;
}

if (!BASE || !API_KEY || !STUB_URL) {
  test('openai SDK compatibility', {
    todo: 'LEAKYD_URL, LEAKYD_API_KEY and LEAKYD_STUB_URL are not set '
      + '(run via tests/integration/test_compat_openai.py)',
  });
} else {
  const nonStreamed = new Map(); // model -> the non-stream completion

  for (const { model, provider, label } of CHAT_MODELS) {
    test(`chat.completions.create, not streamed: ${model} (${provider})`, async () => {
      const res = await nonStream(client(), model);
      const what = `${model} non-stream`;
      assert.ok(typeof res.id === 'string' && res.id.length > 0, `${what}: ${JSON.stringify(res)}`);
      assert.equal(res.object, 'chat.completion', JSON.stringify(res));
      assert.ok(Number.isInteger(res.created) && res.created > 0, JSON.stringify(res));
      assert.ok(typeof res.model === 'string' && res.model.startsWith(model),
        `${what}: model ${JSON.stringify(res.model)}`);
      assert.equal(res.choices.length, 1, JSON.stringify(res));
      const [choice] = res.choices;
      assert.equal(choice.index, 0);
      assert.equal(choice.finish_reason, 'stop', JSON.stringify(choice));
      assert.equal(choice.message.role, 'assistant', JSON.stringify(choice));
      const content = choice.message.content;
      assert.ok(typeof content === 'string', JSON.stringify(choice));
      assert.ok(content.startsWith('Stubbed'), `${what}: content ${JSON.stringify(content)}`);
      assert.ok(content.startsWith(`Stubbed ${label} response`),
        `${what}: answered by the wrong provider? ${JSON.stringify(content)}`);
      checkUsage(res.usage, what);
      checkUsageMatchesContent(res.usage, content, what);
      // The SDK exposes the x-request-id response header as _request_id.
      assert.ok(typeof res._request_id === 'string' && res._request_id.length > 0,
        `${what}: no x-request-id (_request_id ${JSON.stringify(res._request_id)})`);

      // Deterministic for the same input: a second call answers the same.
      const again = await nonStream(client(), model);
      assert.equal(again.choices[0].message.content, content, `${what}: not deterministic`);
      assert.deepEqual(again.usage, res.usage, `${what}: usage not deterministic`);
      nonStreamed.set(model, res);
    });
  }

  for (const { model, provider } of CHAT_MODELS) {
    test(`streamed with include_usage: ${model} (${provider})`, async () => {
      const what = `${model} stream+usage`;
      const expected = nonStreamed.get(model) ?? await nonStream(client(), model);
      const stream = await client().chat.completions.create({
        model, messages: messagesFor(model), stream: true,
        stream_options: { include_usage: true },
      });
      const { chunks, content, usageChunks } = await collect(stream);
      checkChunks(chunks, model, what);
      assert.equal(content, expected.choices[0].message.content,
        `${what}: the deltas differ from the non-stream answer`);
      assert.equal(usageChunks.length, 1,
        `${what}: ${usageChunks.length} chunks carry usage: ${JSON.stringify(usageChunks)}`);
      const last = chunks[chunks.length - 1];
      assert.equal(usageChunks[0], last, `${what}: the usage chunk is not the last one`);
      // OpenAI: "the choices field will always be an empty array" on it.
      assert.deepEqual(last.choices, [], `${what}: usage chunk ${JSON.stringify(last)}`);
      checkUsage(last.usage, what);
      checkUsageMatchesContent(last.usage, content, what);
      assert.equal(last.usage.prompt_tokens, expected.usage.prompt_tokens, what);
      assert.equal(last.usage.completion_tokens, expected.usage.completion_tokens, what);
      assert.equal(last.usage.total_tokens, expected.usage.total_tokens, what);
    });

    test(`streamed without include_usage: ${model} (${provider})`, async () => {
      const what = `${model} stream`;
      const expected = nonStreamed.get(model) ?? await nonStream(client(), model);
      const stream = await client().chat.completions.create({
        model, messages: messagesFor(model), stream: true,
      });
      const { chunks, content, usageChunks } = await collect(stream);
      checkChunks(chunks, model, what);
      assert.equal(content, expected.choices[0].message.content,
        `${what}: the deltas differ from the non-stream answer`);
      assert.deepEqual(usageChunks, [], `${what}: usage forwarded though not asked for`);
    });

    test(`chat.completions.stream() helper: ${model} (${provider})`, async () => {
      const expected = nonStreamed.get(model) ?? await nonStream(client(), model);
      const runner = client().chat.completions.stream({
        model, messages: messagesFor(model), stream_options: { include_usage: true },
      });
      const final = await runner.finalChatCompletion();
      assert.equal(final.choices[0].message.content, expected.choices[0].message.content);
      assert.equal(final.choices[0].message.role, 'assistant');
      assert.equal(final.choices[0].finish_reason, 'stop');
      assert.equal(final.usage?.total_tokens, expected.usage.total_tokens,
        JSON.stringify(final.usage));
    });
  }

  test('embeddings.create: SDK default (base64) and explicit float', async () => {
    const c = client();
    const input = 'The quick brown fox jumped over the lazy dog';
    // No encoding_format: the SDK sends "base64" and decodes the answer into
    // a number[]; a gateway that answered floats anyway would decode to junk.
    const dflt = await c.embeddings.create({ model: EMBEDDING_MODEL.model, input });
    const flt = await c.embeddings.create({ model: EMBEDDING_MODEL.model, input,
      encoding_format: 'float' });
    for (const [what, res] of [['default', dflt], ['float', flt]]) {
      assert.equal(res.object, 'list', `${what}: ${JSON.stringify(res)}`);
      assert.equal(res.data.length, 1, `${what}: ${JSON.stringify(res)}`);
      assert.equal(res.data[0].object, 'embedding');
      assert.equal(res.data[0].index, 0);
      const v = res.data[0].embedding;
      assert.ok(Array.isArray(v) && v.length > 0, `${what}: embedding ${JSON.stringify(v)}`);
      assert.ok(v.every((x) => typeof x === 'number' && Number.isFinite(x)),
        `${what}: embedding ${JSON.stringify(v)}`);
      assert.ok(typeof res.model === 'string' && res.model.startsWith(EMBEDDING_MODEL.model),
        `${what}: model ${res.model}`);
      const u = res.usage;
      assert.ok(Number.isInteger(u?.prompt_tokens) && u.prompt_tokens > 0, JSON.stringify(u));
      assert.equal(u.total_tokens, u.prompt_tokens, JSON.stringify(u));
    }
    const a = dflt.data[0].embedding;
    const b = flt.data[0].embedding;
    assert.equal(a.length, b.length, `base64 gave ${a.length} dims, float ${b.length}`);
    for (let i = 0; i < a.length; i++) {
      assert.equal(a[i], Math.fround(b[i]), `dim ${i}: base64 ${a[i]} vs float ${b[i]}`);
    }
    // Two inputs: one vector each, in order, and equal inputs embed equally.
    const two = await c.embeddings.create({ model: EMBEDDING_MODEL.model,
      input: [input, 'something else'], encoding_format: 'float' });
    assert.deepEqual(two.data.map((d) => d.index), [0, 1]);
    assert.deepEqual(two.data[0].embedding, b);
    assert.notDeepEqual(two.data[1].embedding, b);
  });

  test('models.list: every configured model, owned_by its provider', async () => {
    const seen = new Map();
    for await (const m of client().models.list()) {
      assert.equal(m.object, 'model', JSON.stringify(m));
      assert.ok(Number.isInteger(m.created), JSON.stringify(m));
      assert.ok(!seen.has(m.id), `listed twice: ${m.id}`);
      seen.set(m.id, m);
    }
    for (const { model, provider } of [...CHAT_MODELS, EMBEDDING_MODEL]) {
      assert.ok(seen.has(model), `${model} not listed: ${[...seen.keys()]}`);
      assert.equal(seen.get(model).owned_by, provider, JSON.stringify(seen.get(model)));
    }
  });

  test('models.retrieve', async () => {
    const m = await client().models.retrieve('gpt-4o-mini');
    assert.equal(m.id, 'gpt-4o-mini');
    assert.equal(m.object, 'model');
    assert.equal(m.owned_by, 'openai');
    assert.ok(Number.isInteger(m.created), JSON.stringify(m));
    await assert.rejects(client().models.retrieve('no-such-model'), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, `${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'model_not_found', JSON.stringify(err.error));
      return true;
    });
  });

  test('a bad API key: AuthenticationError (401, invalid_api_key)', async () => {
    const bad = client('lt_aaaaaaaaaaaa_' + 'A'.repeat(43));
    for (const call of [
      () => bad.chat.completions.create({ model: 'gpt-4o-mini', messages: messagesFor('x') }),
      () => bad.models.list(),
      () => client('not-a-key').embeddings.create({ model: EMBEDDING_MODEL.model, input: 'x' }),
    ]) {
      await assert.rejects(call(), (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError, `${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 401);
        assert.equal(err.code, 'invalid_api_key', JSON.stringify(err.error));
        assert.ok(typeof err.message === 'string' && err.message.length > 0);
        return true;
      });
    }
  });

  test('an unknown model: NotFoundError (404, model_not_found)', async () => {
    await assert.rejects(
      client().chat.completions.create({ model: 'no-such-model', messages: messagesFor('x') }),
      (err) => {
        assert.ok(err instanceof OpenAI.NotFoundError, `${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 404);
        assert.equal(err.code, 'model_not_found', JSON.stringify(err.error));
        assert.equal(err.param, 'model', JSON.stringify(err.error));
        assert.equal(err.type, 'invalid_request_error', JSON.stringify(err.error));
        assert.match(err.message, /no-such-model/);
        assert.ok(err.requestID, 'no x-request-id on the error');
        return true;
      });
  });

  // Last: it leaves the openai stub faulted until the plans are cleared.
  test('an upstream 429 past the retries: RateLimitError (429, rate_limit_exceeded)', async () => {
    await stubCall('/_stub/requests', null, 'DELETE');
    await stubCall('/_stub/faults', { match: '/openai', status: 429, retry_after_s: 0, count: 5 });
    let log;
    try {
      await assert.rejects(
        client().chat.completions.create({ model: 'gpt-4o-mini', messages: messagesFor('429') }),
        (err) => {
          assert.ok(err instanceof OpenAI.RateLimitError, `${err?.constructor?.name}: ${err}`);
          assert.equal(err.status, 429);
          assert.equal(err.code, 'rate_limit_exceeded', JSON.stringify(err.error));
          assert.ok(typeof err.message === 'string' && err.message.length > 0);
          return true;
        });
      log = JSON.parse(await stubCall('/_stub/requests', null, 'GET')).requests;
    } finally {
      await stubCall('/_stub/faults', null, 'DELETE');
    }
    // What reached the stub: every attempt the gateway made, each answered 429.
    const calls = log.filter((e) => e.path === '/openai/v1/chat/completions');
    assert.ok(calls.length >= 1 && calls.length <= 5, JSON.stringify(log));
    for (const e of calls) assert.match(e.fault ?? '', /status=429/, JSON.stringify(e));
    if (RETRY_ATTEMPTS) {
      assert.equal(calls.length, RETRY_ATTEMPTS,
        `[provider.openai] retry_attempts is ${RETRY_ATTEMPTS}: ${JSON.stringify(log)}`);
    }
    // The plans are gone: the same call succeeds again.
    const ok = await nonStream(client(), 'gpt-4o-mini');
    assert.ok(ok.choices[0].message.content.startsWith('Stubbed OpenAI response'));
  });
}
