// BSON through the wasm core: py-bson golden vectors, round trips of every
// type, and errors as JS exceptions.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fw, hex, toHex, repo } from './helpers.mjs';

const { encodeBson, decodeBson, ObjectId, Timestamp, Binary, BsonRegExp, Decimal128, Code, MinKey, MaxKey, Double } = fw;

// core/testdata/pybson_vectors.txt: `name hex  # python expression`, made by the real py-bson 0.5.10.
const VECTORS = Object.fromEntries(
  readFileSync(path.join(repo, 'core/testdata/pybson_vectors.txt'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [name, h] = l.split(/\s+/);
      return [name, hex(h)];
    }),
);

const U = new Binary(hex('12345678123456781234567812345678'), 4);

test('encoding JS values gives py-bson\'s bytes', () => {
  const x26 = new Uint8Array(26).fill(0x78);
  const cases = {
    hello: { hello: 'world' },
    empty: {},
    bool: { t: true, f: false },
    int32_max: { i: 2 ** 31 - 1 },
    int32_min: { i: -(2 ** 31) },
    int64_above_i32: { i: 2n ** 31n },
    int64_min: { i: -(2n ** 63n) },
    uint64_min: { u: 2n ** 63n },
    uint64_max: { u: 2n ** 64n - 1n },
    float: { x: 2.5 },
    float_neg_zero: { x: -0 },
    float_inf: { x: Infinity },
    float_tiny: { x: 5e-324 },
    float_int_valued: { x: new Double(1) },
    decimal: { x: 0.1 },
    str_unicode: { s: 'h\u00e9 \u4e2d \u{1f430}' },
    str_nul_inside: { s: 'a\u0000b' },
    key_unicode: { 'cl\u00e9': 1 },
    key_empty: { '': 1 },
    bytes: { b: hex('000161 62ff') },
    uuid: { u: U },
    datetime: { d: new Date(Date.UTC(2024, 5, 30, 12, 0, 0, 123)) },
    datetime_before_epoch: { d: new Date(-1) },
    none: { n: null },
    nested: { d: { a: 1, b: { c: 'x' } } },
    list: { l: [1, 'a', null, 2.5] },
    list_nested: { l: [[1, 2], { k: true }] },
    key_order: { z: 1, a: 2, m: 3 },
    mixed_ints: { a: 1, b: 2n ** 40n, c: 2n ** 64n - 2n, d: -7 },
    bench_small: { seq: 0, pad: x26 },
    all_types: {
      flag: true, n: 42, big: 2n ** 40n, huge: 2n ** 63n + 5n, x: 0.5, s: 'h\u00e9', raw: hex('0102'), id: U,
      at: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)), nothing: null, sub: { k: [1, [2, 'three']] },
    },
  };
  for (const [name, value] of Object.entries(cases)) {
    assert.ok(VECTORS[name], name);
    assert.equal(toHex(encodeBson(value)), toHex(VECTORS[name]), name);
  }
  // A Map keeps its order; undefined is written as null.
  assert.equal(toHex(encodeBson(new Map([['z', 1], ['a', 2], ['m', 3]]))), toHex(VECTORS.key_order));
  assert.equal(toHex(encodeBson({ n: undefined })), toHex(VECTORS.none));
});

test('every py-bson vector decodes and re-encodes to the same bytes', () => {
  for (const [name, bytes] of Object.entries(VECTORS)) {
    const value = decodeBson(bytes);
    const again = encodeBson(value);
    if (name === 'float_int_valued') {
      // The documented exception: a double holding an integer decodes to a JS number,
      // which is written back as int32 (wrap it in Double to keep the double).
      assert.deepEqual(value, { x: 1 });
      assert.equal(toHex(again), '0c000000107800' + '01000000' + '00');
      continue;
    }
    assert.equal(toHex(again), toHex(bytes), name);
  }
  // What the quirky inputs decode to.
  assert.deepEqual(decodeBson(VECTORS.in_int64_small), { n: 5n });
  assert.deepEqual(decodeBson(VECTORS.in_int64_small, { int64: 'number' }), { n: 5 });
  assert.equal(decodeBson(VECTORS.in_objectid).o.toHexString(), '000102030405060708090a0b');
  assert.equal(decodeBson(VECTORS.uint64_max).u.value, 2n ** 64n - 1n);
  assert.deepEqual(decodeBson(VECTORS.in_binary_subtype80).b, new Binary(hex('6869'), 0x80));
  assert.deepEqual(decodeBson(VECTORS.bytes).b, hex('000161 62ff'));
});

test('round trips of every type', () => {
  const oid = new ObjectId();
  const value = {
    int32: -5,
    double: 1.25,
    bigDouble: 2 ** 53,
    negZero: -0,
    nan: NaN,
    inf: -Infinity,
    int64: -(2n ** 62n),
    string: 'h\u00e9llo \u{1f430}',
    bool: false,
    nul: null,
    date: new Date(Date.UTC(1999, 11, 31, 23, 59, 59, 999)),
    bytes: new Uint8Array([0, 1, 2, 255]),
    binary: new Binary(new Uint8Array([9, 8]), 0x80),
    array: [1, 'two', [3, { four: 4 }], []],
    nested: { a: { b: { c: {} } } },
    regexp: /a+b*$/imsu,
    bsonRegexp: new BsonRegExp('a b', 'ix'),
    oid,
    ts: new Timestamp(1700000000, 7),
    uint64: Timestamp.fromBigInt(2n ** 63n + 1n),
    dec: new Decimal128('-12345.6789E-10'),
    code: new Code('function () { return 1; }'),
    codeScope: new Code('x + 1', { x: 41 }),
    min: new MinKey(),
    max: new MaxKey(),
  };
  const bytes = encodeBson(value);
  const back = decodeBson(bytes);
  assert.deepEqual(Object.keys(back), Object.keys(value));
  for (const k of Object.keys(value)) {
    if (k === 'nan') assert.ok(Number.isNaN(back.nan));
    else if (k === 'negZero') assert.ok(Object.is(back.negZero, -0));
    else assert.deepEqual(back[k], value[k], k);
  }
  assert.ok(back.oid instanceof ObjectId && back.oid.equals(oid));
  assert.ok(back.regexp instanceof RegExp);
  assert.equal(back.regexp.flags, 'imsu');
  assert.equal(back.dec.toString(), '-0.00000123456789');
  assert.equal(back.uint64.value, 2n ** 63n + 1n);
  // The bytes are stable through a second trip.
  assert.equal(toHex(encodeBson(back)), toHex(bytes));
  // Typed arrays and ArrayBuffers are binary too; a key "__proto__" stays a key.
  const special = decodeBson(encodeBson({ f: new Float64Array([1.5]), ab: new Uint8Array([7]).buffer, ['__proto__']: 1 }));
  assert.deepEqual(special.f, new Uint8Array(new Float64Array([1.5]).buffer));
  assert.deepEqual(special.ab, new Uint8Array([7]));
  assert.equal(Object.getPrototypeOf(decodeBson(encodeBson(JSON.parse('{"__proto__": {"x": 1}}')))), Object.prototype);
  assert.deepEqual(Object.keys(decodeBson(encodeBson(JSON.parse('{"__proto__": 1}')))), ['__proto__']);
  // Symbols (0x0E) decode as strings, undefined (0x06) as undefined.
  assert.deepEqual(decodeBson(hex('0e000000 0e7300 02000000 7800 00')), { s: 'x' });
  assert.deepEqual(decodeBson(hex('08000000 067500 00')), { u: undefined });
});

test('errors are Errors with a code and a useful message', () => {
  const throwsCode = (fn, code, re, check) => assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, 'an Error');
    assert.equal(e.code, code);
    if (re) assert.match(e.message, re);
    if (check) check(e);
    return true;
  });
  throwsCode(() => encodeBson({ a: { f: () => 1 } }), 'ERR_BSON_ENCODE', /function cannot be encoded at a\.f/, (e) => assert.equal(e.path, 'a.f'));
  throwsCode(() => encodeBson({ s: Symbol('x') }), 'ERR_BSON_ENCODE', /symbol/);
  const cyclic = { a: [] };
  cyclic.a.push(cyclic);
  throwsCode(() => encodeBson(cyclic), 'ERR_BSON_DEPTH', /deeper than 100/);
  throwsCode(() => encodeBson({ b: 2n ** 64n }), 'ERR_BSON_INT_RANGE', /18446744073709551616/);
  throwsCode(() => encodeBson({ d: new Date(NaN) }), 'ERR_BSON_ENCODE', /invalid Date at d/);
  throwsCode(() => encodeBson({ 'a\u0000b': 1 }), 'ERR_BSON_ENCODE');
  throwsCode(() => encodeBson([1, 2]), 'ERR_BSON_ENCODE', /top-level value/);
  throwsCode(() => encodeBson('x'), 'ERR_BSON_ENCODE', /top-level value/);
  throwsCode(() => encodeBson({ r: /x/v }), 'ERR_BSON_ENCODE', /flag 'v' has no BSON equivalent \(use BsonRegExp\) at r/);
  throwsCode(() => encodeBson({ s: 'x'.repeat(100) }, { maxLen: 50 }), 'ERR_BSON_TOO_LONG', /over the limit of 50/, (e) => assert.equal(e.max, 50));
  throwsCode(() => decodeBson(hex('0500000001')), 'ERR_BSON_TERMINATOR', /ends in 0x01/, (e) => assert.equal(e.found, 1));
  throwsCode(() => decodeBson(hex('06000000 00')), 'ERR_BSON_LENGTH_MISMATCH', /declares 6 bytes but 5/);
  throwsCode(() => decodeBson(hex('0400')), 'ERR_BSON_TOO_SHORT');
  throwsCode(() => decodeBson(hex('0e000000 027300 05000000 6100 00')), 'ERR_BSON_DECODE');
  throwsCode(() => decodeBson(VECTORS.hello, { int64: 'string' }), 'ERR_INVALID_ARGUMENT', /int64/);
  throwsCode(() => decodeBson(VECTORS.hello, { maxLen: 10 }), 'ERR_BSON_TOO_LONG');
  throwsCode(() => new ObjectId('xyz'), 'ERR_INVALID_ARGUMENT', /24 hex digits/);
  throwsCode(() => new Decimal128('one'), 'ERR_INVALID_ARGUMENT', /decimal128/);
});

test('extended-JSON-looking keys stay keys, as in py-bson', () => {
  // py-bson: {"a": {"$oid": "000102030405060708090a0b"}, "d": {"$date": {"$numberLong": "5"}}}
  const value = { a: { $oid: '000102030405060708090a0b' }, d: { $date: { $numberLong: '5' } } };
  const bytes = encodeBson(value);
  assert.deepEqual(decodeBson(bytes), value);
  assert.deepEqual(encodeBson(decodeBson(bytes)), bytes);
});

test('documents nested past the depth limit are refused with ERR_BSON_TOO_DEEP', () => {
  // {"a": {"a": ... {} ...}}, `levels` documents deep, built by hand.
  const nested = (levels) => {
    let doc = Uint8Array.of(5, 0, 0, 0, 0);
    for (let i = 1; i < levels; i++) {
      const len = 4 + 3 + doc.length + 1;
      const out = new Uint8Array(len);
      new DataView(out.buffer).setInt32(0, len, true);
      out.set([0x03, 0x61, 0x00], 4);
      out.set(doc, 7);
      doc = out;
    }
    return doc;
  };
  assert.doesNotThrow(() => decodeBson(nested(100)));
  assert.throws(
    () => decodeBson(nested(101)),
    (e) => e instanceof Error && e.code === 'ERR_BSON_TOO_DEEP' && e.max === 100 && /deep|depth|nest/i.test(e.message),
  );
  // Deep enough to have overflowed the stack before the limit existed.
  assert.throws(() => decodeBson(nested(3000)), (e) => e.code === 'ERR_BSON_TOO_DEEP');
});
