// The public JavaScript API of the `framewire` package, built on the wasm
// module (`wasm`: the wasm-bindgen glue for Node or for the web).
//
// This file is the single source of both the ES module (lib/api.mjs) and the
// CommonJS module (lib/api.cjs) of the package: scripts/build-wasm.sh turns
// `export function makeApi` into a CommonJS export. Keep it free of imports.

export function makeApi(wasm) {
  const encoder = new TextEncoder();
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

  /** An Error with a `code` and extra properties, like those thrown by the wasm core. */
  function fail(code, message, props) {
    const e = new Error(message);
    e.code = code;
    if (props) Object.assign(e, props);
    return e;
  }

  /** Bytes of a payload: Uint8Array, ArrayBuffer, any ArrayBuffer view, or a string (UTF-8). */
  function toBytes(value, what = 'payload') {
    if (value instanceof Uint8Array) return value;
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
    if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    if (typeof value === 'string') return encoder.encode(value);
    if (value === undefined || value === null) return new Uint8Array(0);
    throw fail('ERR_INVALID_ARGUMENT', `${what} must be a Uint8Array, an ArrayBuffer (or view) or a string`);
  }

  /** Like toBytes, but other objects are encoded as BSON documents. */
  function toPayload(value, what = 'payload') {
    if (value !== null && typeof value === 'object' && !(value instanceof ArrayBuffer) && !ArrayBuffer.isView(value)) {
      return wasm.encodeBson(value, undefined);
    }
    return toBytes(value, what);
  }

  // ----- BSON value classes -----

  class ObjectId {
    /** `new ObjectId()` makes a fresh id; also from 24 hex digits or 12 bytes. */
    constructor(id) {
      if (id === undefined) {
        this.bytes = wasm.newObjectIdBytes();
      } else if (typeof id === 'string') {
        if (!/^[0-9a-fA-F]{24}$/.test(id)) throw fail('ERR_INVALID_ARGUMENT', `ObjectId: ${JSON.stringify(id)} is not 24 hex digits`);
        this.bytes = Uint8Array.from(id.match(/../g), (h) => parseInt(h, 16));
      } else {
        const b = toBytes(id, 'ObjectId');
        if (b.length !== 12) throw fail('ERR_INVALID_ARGUMENT', `ObjectId: ${b.length} bytes, not 12`);
        this.bytes = Uint8Array.from(b);
      }
    }
    get _bsontype() { return 'ObjectId'; }
    toHexString() { return hex(this.bytes); }
    toString() { return this.toHexString(); }
    toJSON() { return this.toHexString(); }
    equals(other) { return other instanceof ObjectId && other.toHexString() === this.toHexString(); }
    /** Seconds since the epoch when the id was made (its first 4 bytes). */
    getTimestamp() { return new Date(new DataView(this.bytes.buffer, this.bytes.byteOffset, 4).getUint32(0) * 1000); }
    static isValid(id) { return typeof id === 'string' ? /^[0-9a-fA-F]{24}$/.test(id) : id instanceof ObjectId; }
  }

  class Timestamp {
    /** A BSON timestamp (0x11): `t` (seconds) and `i` (increment), both 0..2^32-1. */
    constructor(t, i) {
      for (const [k, v] of [['t', t], ['i', i]]) {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw fail('ERR_INVALID_ARGUMENT', `Timestamp: ${k} must be an integer 0..2^32-1`);
      }
      this.t = t;
      this.i = i;
    }
    get _bsontype() { return 'Timestamp'; }
    /** The 64-bit value (t << 32 | i): py-bson's uint64 for integers 2^63..2^64-1. */
    get value() { return (BigInt(this.t) << 32n) | BigInt(this.i); }
    static fromBigInt(v) {
      const b = BigInt(v);
      if (b < 0n || b > 0xffffffffffffffffn) throw fail('ERR_INVALID_ARGUMENT', 'Timestamp.fromBigInt: value outside 0..2^64-1');
      return new Timestamp(Number(b >> 32n), Number(b & 0xffffffffn));
    }
  }

  class Binary {
    /** Bytes with a BSON binary subtype (0 generic, 4 UUID, 0x80.. user defined, ...). */
    constructor(bytes, subtype = 0) {
      if (!Number.isInteger(subtype) || subtype < 0 || subtype > 255) throw fail('ERR_INVALID_ARGUMENT', 'Binary: subtype must be 0..255');
      this.bytes = toBytes(bytes, 'Binary bytes');
      this.subtype = subtype;
    }
    get _bsontype() { return 'Binary'; }
  }

  class BsonRegExp {
    /** A BSON regular expression with any options (`i l m s u x`), for those JS RegExp lacks. */
    constructor(pattern, options = '') {
      this.pattern = String(pattern);
      this.options = String(options);
    }
    get _bsontype() { return 'BSONRegExp'; }
  }

  class Decimal128 {
    /** 16 bytes of an IEEE 754 decimal128 (as on the wire), or a decimal string. */
    constructor(value) {
      const b = typeof value === 'string' ? wasm.decimal128FromString(value) : toBytes(value, 'Decimal128');
      if (b.length !== 16) throw fail('ERR_INVALID_ARGUMENT', `Decimal128: ${b.length} bytes, not 16`);
      this.bytes = Uint8Array.from(b);
    }
    get _bsontype() { return 'Decimal128'; }
    toString() { return wasm.decimal128ToString(this.bytes); }
    toJSON() { return this.toString(); }
    static fromString(s) { return new Decimal128(String(s)); }
  }

  class Code {
    /** JavaScript code (0x0D), with a scope document (0x0F) when `scope` is an object. */
    constructor(code, scope = null) {
      this.code = String(code);
      this.scope = scope;
    }
    get _bsontype() { return 'Code'; }
  }

  class MinKey { get _bsontype() { return 'MinKey'; } }
  class MaxKey { get _bsontype() { return 'MaxKey'; } }

  class Double {
    /** Forces a number to be written as a BSON double (integers are int32 otherwise). */
    constructor(value) { this.value = Number(value); }
    get _bsontype() { return 'Double'; }
    valueOf() { return this.value; }
  }

  wasm.registerBsonTypes({ ObjectId, Timestamp, Binary, BsonRegExp, Decimal128, Code, MinKey, MaxKey });

  /** Encodes a plain object (or Map) as one BSON document. Options: `{ maxLen }`. */
  function encodeBson(value, options) {
    return wasm.encodeBson(value, options);
  }

  /** Decodes exactly one BSON document. Options: `{ int64: 'bigint' | 'number', maxLen }`. */
  function decodeBson(bytes, options) {
    return wasm.decodeBson(toBytes(bytes, 'bytes'), options);
  }

  // ----- Codec -----

  function unpack(raw) {
    const [data, ends] = raw.take();
    const frames = new Array(ends.length);
    let start = 0;
    for (let i = 0; i < ends.length; i++) {
      const end = ends[i];
      frames[i] = data.subarray(start, end);
      start = end;
    }
    return frames;
  }

  class Codec {
    /**
     * A framing codec: `spec` is `length[:W[:le|be]]`, `length:varint`, `bson`, `lines`,
     * `fixed:N`, `json-header` or `packet`.
     */
    constructor(spec, options) {
      this._raw = new wasm.RawCodec(String(spec), options);
    }
    /** The whole frame for `payload`. */
    encode(payload) { return this._raw.encode(toBytes(payload)); }
    /** Throws if `payload` cannot be sent in this framing. */
    check(payload) { this._raw.check(toBytes(payload)); }
    /**
     * Decodes a chunk of the byte stream (any chunking); returns the payloads it completes.
     * Payloads of one call are views of one buffer. On a protocol error the payloads decoded
     * before it are on the error's `frames` property, and every later call throws again.
     */
    push(chunk) {
      try {
        this._raw.feed(toBytes(chunk, 'chunk'));
      } catch (e) {
        if (e && typeof e === 'object') e.frames = unpack(this._raw);
        throw e;
      }
      return unpack(this._raw);
    }
    /** Like push, but returns `{ data, ends }`: every payload back to back, and each one's end offset. */
    pushPacked(chunk) {
      try {
        this._raw.feed(toBytes(chunk, 'chunk'));
      } catch (e) {
        if (e && typeof e === 'object') e.frames = unpack(this._raw);
        throw e;
      }
      const [data, ends] = this._raw.take();
      return { data, ends };
    }
    /** The stream ended: returns the last payloads, or throws ERR_TRUNCATED inside a frame. */
    end() {
      try {
        this._raw.finish();
      } catch (e) {
        if (e && typeof e === 'object') e.frames = unpack(this._raw);
        throw e;
      }
      return unpack(this._raw);
    }
    get spec() { return this._raw.spec; }
    /** Bytes buffered for an incomplete frame. */
    get buffered() { return this._raw.buffered; }
    get maxBuffered() { return this._raw.maxBuffered; }
    get maxFrameLen() { return this._raw.maxFrameLen; }
    get stats() { return this._raw.stats; }
    /** Frees the wasm memory now (it is also freed when the codec is garbage-collected). */
    free() {
      if (this._raw) {
        this._raw.free();
        this._raw = null;
      }
    }
  }

  // ----- Connection -----

  const reasons = wasm.packetReasons();
  const now = () => performance.now();
  const CONNECTING = 0;
  const OPEN = 1;

  function responseValue(result) {
    if (result === undefined || result === null) return { flags: 0, payload: new Uint8Array(0) };
    if (typeof result === 'number') return { flags: result, payload: new Uint8Array(0) };
    if (Array.isArray(result) && result.length === 2 && typeof result[0] === 'number') {
      return { flags: result[0], payload: toPayload(result[1], 'response payload') };
    }
    if (typeof result === 'object' && !(result instanceof ArrayBuffer) && !ArrayBuffer.isView(result)
      && ('payload' in result || 'flags' in result)) {
      return { flags: result.flags ?? 0, payload: toPayload(result.payload, 'response payload') };
    }
    return { flags: 0, payload: toPayload(result, 'response payload') };
  }

  function messageBytes(data) {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (typeof data === 'string') return encoder.encode(data);
    // Node's ws may hand an array of Buffers for fragmented messages.
    if (Array.isArray(data)) {
      const total = data.reduce((n, b) => n + b.byteLength, 0);
      const out = new Uint8Array(total);
      let at = 0;
      for (const b of data) {
        out.set(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), at);
        at += b.byteLength;
      }
      return out;
    }
    throw fail('ERR_WEBSOCKET', `unexpected WebSocket message of type ${typeof data}`);
  }

  class Connection {
    /**
     * A connection over a WebSocket. `target` is a URL (string or URL), a WebSocket, or a
     * function returning one. Options: `codec` ('packet' (default) or a Codec spec),
     * `mode` ('stream': WebSocket messages are arbitrary chunks of the byte stream (default);
     * 'frame': each message is one frame's payload), `codecOptions`, `packet` (PacketCore
     * limits), `handler` (serves the peer's requests), `WebSocket` (the implementation, e.g.
     * Node's `ws`), `protocols`, `highWaterMark` (1 MiB), `lowWaterMark` (highWaterMark / 4),
     * `closeTimeoutMs` (5000), `maxQueuedInput` (64 MiB).
     */
    constructor(target, options = {}) {
      this._listeners = new Map();
      this._codecSpec = options.codec ?? 'packet';
      this._mode = options.mode ?? 'stream';
      if (this._mode !== 'stream' && this._mode !== 'frame') {
        throw fail('ERR_INVALID_ARGUMENT', `mode must be "stream" or "frame", not ${JSON.stringify(this._mode)}`);
      }
      this._highWaterMark = options.highWaterMark ?? 1024 * 1024;
      this._lowWaterMark = options.lowWaterMark ?? Math.floor(this._highWaterMark / 4);
      this._closeTimeoutMs = options.closeTimeoutMs ?? 5000;
      this._maxQueuedInput = options.maxQueuedInput ?? 64 * 1024 * 1024;
      this._handler = options.handler ?? null;
      this._isPacket = this._codecSpec === 'packet';
      if (this._isPacket) {
        this._core = new wasm.PacketCore(options.packet);
        this._pending = new Map();
      } else {
        this._codec = new Codec(this._codecSpec, options.codecOptions);
        this._isBson = this._codec.spec === 'bson';
      }
      this._inputQueue = [];
      this._queuedInput = 0;
      this._timer = null;
      this._timerAt = Infinity;
      this._closeTimer = null;
      this._drainTimer = null;
      this._needDrain = false;
      this._readyWaiters = [];
      this._closed = false;
      this._closing = false;
      this._closeInfo = null;

      let ws;
      if (typeof target === 'function') {
        ws = target();
      } else if (typeof target === 'string' || (typeof URL !== 'undefined' && target instanceof URL)) {
        const Impl = options.WebSocket ?? globalThis.WebSocket;
        if (typeof Impl !== 'function') {
          throw fail('ERR_NO_WEBSOCKET', 'no WebSocket implementation: pass options.WebSocket (in Node, the "ws" package)');
        }
        ws = options.protocols === undefined ? new Impl(String(target)) : new Impl(String(target), options.protocols);
      } else {
        ws = target;
      }
      if (!ws || typeof ws.send !== 'function') throw fail('ERR_INVALID_ARGUMENT', 'target must be a URL, a WebSocket or a function returning one');
      ws.binaryType = 'arraybuffer';
      this._ws = ws;
      this.opened = new Promise((resolve, reject) => {
        this._openResolve = resolve;
        this._openReject = reject;
      });
      // Nobody has to await `opened`; the failure is reported through 'error'/'close' too.
      this.opened.catch(() => {});
      ws.onopen = () => this._onOpen();
      ws.onmessage = (ev) => this._onMessage(ev.data);
      ws.onerror = (ev) => this._onError(ev);
      ws.onclose = (ev) => this._onClose(ev);
      if (ws.readyState === OPEN) queueMicrotask(() => this._onOpen());
    }

    /** Resolves with the connection once it is open. */
    static connect(target, options) {
      const c = new Connection(target, options);
      return c.opened.then(() => c);
    }

    // ----- events -----

    /** Adds a listener: 'open', 'message', 'object', 'request', 'close', 'error', 'drain', 'peerEndedRequests'. */
    on(type, fn) {
      let set = this._listeners.get(type);
      if (!set) this._listeners.set(type, (set = new Set()));
      set.add(fn);
      return this;
    }
    off(type, fn) {
      this._listeners.get(type)?.delete(fn);
      return this;
    }
    once(type, fn) {
      const wrapper = (...args) => {
        this.off(type, wrapper);
        fn(...args);
      };
      return this.on(type, wrapper);
    }
    _has(type) {
      const set = this._listeners.get(type);
      return set !== undefined && set.size > 0;
    }
    _emit(type, arg) {
      const set = this._listeners.get(type);
      if (!set || set.size === 0) return false;
      for (const fn of [...set]) {
        try {
          fn(arg);
        } catch (e) {
          if (type !== 'error') this._emit('error', e);
        }
      }
      return true;
    }

    // ----- state -----

    get codec() { return this._codecSpec; }
    get mode() { return this._mode; }
    /** The WebSocket's readyState. */
    get readyState() { return this._ws.readyState; }
    /** Bytes handed to the WebSocket and not yet sent. */
    get bufferedAmount() { return this._ws.bufferedAmount ?? 0; }
    /** Our requests waiting for a response. */
    get pending() { return this._isPacket ? this._pending.size : 0; }
    get closed() { return this._closed; }
    /** The packet state machine (packet codec only), for its state and stats. */
    get core() { return this._core ?? null; }

    // ----- sending -----

    /** Sends one frame (not for the packet codec: use request). */
    send(payload) {
      this._assertWritable();
      if (this._isPacket) throw fail('ERR_INVALID_ARGUMENT', 'send() is for framed codecs; use request() on a packet connection');
      const bytes = toBytes(payload);
      if (this._mode === 'stream') {
        this._write(this._codec.encode(bytes));
      } else {
        this._codec.check(bytes);
        this._write(bytes);
      }
    }

    /** Sends a JS object as a BSON document frame. */
    sendObject(value) {
      this.send(wasm.encodeBson(value, undefined));
    }

    /**
     * Sends a request; resolves with `{ ok, flags, payload }` (ok false: the peer's failure
     * response, payload its reason). Rejects with ERR_TIMEOUT, ERR_CANCELLED (the peer's stream
     * ended first) or ERR_CLOSED. A payload that is a plain object is sent as BSON.
     */
    request(rqType, payload, { flags = 0, channel = 0, timeoutMs } = {}) {
      try {
        this._assertWritable();
        if (!this._isPacket) throw fail('ERR_INVALID_ARGUMENT', `request() needs the packet codec, not ${JSON.stringify(this._codecSpec)}`);
        const bytes = toPayload(payload);
        const tag = this._core.submit(channel, rqType, flags, bytes, now(), timeoutMs);
        const p = new Promise((resolve, reject) => {
          this._pending.set(`${channel}:${tag}`, { resolve, reject });
        });
        this._after();
        return p;
      } catch (e) {
        return Promise.reject(e);
      }
    }

    /** Serves the peer's requests: `handler({ rqType, flags, payload, channel, tag })` returns
     * (or resolves to) undefined, a number (flags), bytes or a string (payload), an object
     * `{ flags, payload }`, or `[flags, payload]`. A throw or rejection answers
     * "exception during handler". */
    serve(handler) {
      if (!this._isPacket) throw fail('ERR_INVALID_ARGUMENT', 'serve() needs the packet codec');
      this._handler = handler;
      return this;
    }

    /** Resolves when the WebSocket's bufferedAmount is at or below lowWaterMark. */
    ready() {
      if (this._closed) return Promise.reject(fail('ERR_CLOSED', 'connection closed'));
      if (this.bufferedAmount <= this._lowWaterMark && this._ws.readyState === OPEN) return Promise.resolve();
      return new Promise((resolve, reject) => {
        this._readyWaiters.push({ resolve, reject });
        this._watchDrain();
      });
    }

    /**
     * Closes. Packet codec: the orderly close (ERQ, answers still owed, EOF), then the
     * WebSocket closes once the peer's stream has ended, or after closeTimeoutMs. Resolves
     * with `{ code, reason, wasClean }` when the WebSocket has closed.
     */
    close(code = 1000, reason = '') {
      const done = this._closed
        ? Promise.resolve(this._closeInfo)
        : new Promise((resolve) => this.once('close', resolve));
      if (this._closed || this._closing) return done;
      this._closing = true;
      this._closeCode = code;
      this._closeReason = reason;
      if (this._isPacket && this._ws.readyState === OPEN) {
        this._core.close();
        this._closeTimer = setTimeout(() => this._closeSocket(code, reason), this._closeTimeoutMs);
        this._after();
      } else {
        this._closeSocket(code, reason);
      }
      return done;
    }

    // ----- internals -----

    _assertWritable() {
      if (this._closed) throw fail('ERR_CLOSED', 'connection closed');
    }

    _write(bytes) {
      if (this._ws.readyState !== OPEN) {
        if (this._ws.readyState === CONNECTING) throw fail('ERR_NOT_OPEN', 'WebSocket not open yet (await connection.opened)');
        throw fail('ERR_CLOSED', 'WebSocket is closing or closed');
      }
      this._ws.send(bytes);
      if (this.bufferedAmount > this._highWaterMark) {
        this._needDrain = true;
        this._watchDrain();
      }
    }

    _watchDrain() {
      if (this._drainTimer !== null || this._closed) return;
      const check = () => {
        this._drainTimer = null;
        if (this._closed) return;
        if (this.bufferedAmount <= this._lowWaterMark && this._ws.readyState === OPEN) {
          const waiters = this._readyWaiters;
          this._readyWaiters = [];
          for (const w of waiters) w.resolve();
          if (this._needDrain) {
            this._needDrain = false;
            this._emit('drain');
          }
        } else {
          this._drainTimer = setTimeout(check, 5);
        }
      };
      this._drainTimer = setTimeout(check, 0);
    }

    _onOpen() {
      if (this._opened || this._closed) return;
      this._opened = true;
      this._openResolve(this);
      this._emit('open');
      if (this._isPacket) this._after();
      if (this._readyWaiters.length) this._watchDrain();
    }

    _onMessage(data) {
      if (this._closed) return;
      let bytes;
      try {
        bytes = messageBytes(data);
      } catch (e) {
        this._fail(e);
        return;
      }
      if (this._isPacket) {
        this._input(bytes);
      } else if (this._mode === 'frame') {
        this._deliver(bytes);
      } else {
        let frames;
        try {
          frames = this._codec.push(bytes);
        } catch (e) {
          for (const f of e.frames ?? []) this._deliver(f);
          this._fail(e);
          return;
        }
        for (const f of frames) this._deliver(f);
      }
    }

    _deliver(payload) {
      this._emit('message', payload);
      if (this._isBson && this._has('object')) {
        let obj;
        try {
          obj = wasm.decodeBson(payload, undefined);
        } catch (e) {
          this._emit('error', e);
          return;
        }
        this._emit('object', obj);
      }
    }

    _input(bytes) {
      if (this._inputQueue.length > 0) {
        this._queue(bytes);
        return;
      }
      let taken;
      try {
        taken = this._core.handleInput(bytes);
      } catch (e) {
        this._fail(e);
        return;
      }
      if (taken < bytes.length) this._queue(bytes.subarray(taken));
      this._after();
    }

    _queue(bytes) {
      this._inputQueue.push(bytes);
      this._queuedInput += bytes.length;
      if (this._queuedInput > this._maxQueuedInput) {
        this._fail(fail('ERR_INPUT_OVERFLOW', `more than ${this._maxQueuedInput} received bytes wait for the connection to take them`, { queued: this._queuedInput, max: this._maxQueuedInput }));
      }
    }

    /** Offers queued input again; true if any was taken. */
    _retryInput() {
      let progress = false;
      while (this._inputQueue.length > 0 && !this._closed) {
        const head = this._inputQueue[0];
        let taken;
        try {
          taken = this._core.handleInput(head);
        } catch (e) {
          this._fail(e);
          return false;
        }
        if (taken === 0) break;
        progress = true;
        this._queuedInput -= taken;
        if (taken < head.length) {
          this._inputQueue[0] = head.subarray(taken);
          break;
        }
        this._inputQueue.shift();
      }
      return progress;
    }

    /** After any input or command (packet codec): events, output, input waiting, timer. */
    _after() {
      if (!this._core || this._inAfter) return;
      this._inAfter = true;
      try {
        for (;;) {
          let ev;
          while ((ev = this._core.pollEvent()) !== undefined) this._event(ev);
          this._flush();
          if (!this._retryInput()) break;
        }
        this._flush();
        this._armTimer();
      } finally {
        this._inAfter = false;
      }
    }

    _flush() {
      if (!this._core || this._ws.readyState !== OPEN) return;
      if (this._mode === 'frame') {
        for (const p of this._core.takeTransmitPackets()) this._write(p);
      } else {
        const bytes = this._core.takeTransmit();
        if (bytes !== undefined) this._write(bytes);
      }
    }

    _armTimer() {
      const at = this._core ? this._core.pollTimeout() : undefined;
      if (at === undefined) {
        if (this._timer !== null) clearTimeout(this._timer);
        this._timer = null;
        this._timerAt = Infinity;
        return;
      }
      if (this._timer !== null && this._timerAt === at) return;
      if (this._timer !== null) clearTimeout(this._timer);
      this._timerAt = at;
      this._timer = setTimeout(() => {
        this._timer = null;
        this._timerAt = Infinity;
        if (!this._core) return;
        this._core.handleTimeout(now());
        this._after();
      }, Math.max(0, Math.ceil(at - now())));
    }

    _settle(ev, fn) {
      const key = `${ev.channel}:${ev.tag}`;
      const p = this._pending.get(key);
      if (p) {
        this._pending.delete(key);
        fn(p);
      }
    }

    _event(ev) {
      switch (ev.type) {
        case 'request':
          this._serveOne(ev);
          break;
        case 'response':
          this._settle(ev, (p) => p.resolve({ ok: ev.ok, flags: ev.flags, payload: ev.payload }));
          break;
        case 'timeout':
          this._settle(ev, (p) => p.reject(fail('ERR_TIMEOUT', `request ${ev.channel}:${ev.tag} timed out`, { channel: ev.channel, tag: ev.tag })));
          break;
        case 'cancelled':
          this._settle(ev, (p) => p.reject(fail('ERR_CANCELLED', `request ${ev.channel}:${ev.tag} cancelled: the peer's stream ended`, { channel: ev.channel, tag: ev.tag })));
          break;
        case 'peerEndedRequests':
          this._emit('peerEndedRequests');
          break;
        case 'peerClosed':
          this._emit('peerClosed', ev.reason);
          break;
        case 'protocolError':
          this._emit('error', ev.error);
          break;
        case 'unknownResponse':
          this._emit('unknownResponse', { channel: ev.channel, tag: ev.tag });
          break;
        case 'closed':
          // Our EOF is out and the peer's stream has ended: close the socket.
          queueMicrotask(() => this._closeSocket(this._closeCode ?? 1000, this._closeReason ?? ''));
          break;
        default:
          break;
      }
    }

    _serveOne(ev) {
      const { channel, tag } = ev;
      const core = this._core;
      const answer = (fn) => {
        if (this._core !== core) return; // closed meanwhile
        try {
          fn();
        } catch (e) {
          this._emit('error', e);
          try { core.reject(channel, tag, reasons.exceptionDuringHandler); } catch (_) { /* already answered */ }
        }
        this._after();
      };
      const handler = this._handler;
      if (!handler) {
        answer(() => core.reject(channel, tag, reasons.noRequestHandler));
        return;
      }
      let result;
      try {
        result = handler({ rqType: ev.rqType, flags: ev.flags, payload: ev.payload, channel, tag });
      } catch (e) {
        this._emit('handlerError', e);
        answer(() => core.reject(channel, tag, reasons.exceptionDuringHandler));
        return;
      }
      const respond = (value) => answer(() => {
        const { flags, payload } = responseValue(value);
        core.respond(channel, tag, flags, payload);
      });
      if (result && typeof result.then === 'function') {
        result.then(respond, (e) => {
          this._emit('handlerError', e);
          answer(() => core.reject(channel, tag, reasons.exceptionDuringHandler));
        });
      } else {
        respond(result);
      }
    }

    _fail(error) {
      this._emit('error', error);
      // A close reason is at most 123 bytes of UTF-8.
      let reason = String(error?.message ?? error).slice(0, 123);
      while (encoder.encode(reason).length > 123) reason = reason.slice(0, -1);
      this._closeSocket(4002, reason);
    }

    _closeSocket(code, reason) {
      if (this._closeTimer !== null) {
        clearTimeout(this._closeTimer);
        this._closeTimer = null;
      }
      const ws = this._ws;
      if (ws.readyState === CONNECTING || ws.readyState === OPEN) {
        try {
          ws.close(code, reason);
        } catch (e) {
          ws.close();
        }
      }
    }

    _onError(ev) {
      const message = ev?.message ?? ev?.error?.message ?? 'WebSocket error';
      const err = fail('ERR_WEBSOCKET', message);
      if (!this._opened) this._openReject(err);
      this._emit('error', err);
    }

    _onClose(ev) {
      if (this._closed) return;
      const info = { code: ev?.code ?? 1006, reason: ev?.reason ?? '', wasClean: ev?.wasClean ?? false };
      if (!this._opened) this._openReject(fail('ERR_WEBSOCKET', `WebSocket closed before opening (code ${info.code})`, info));
      if (this._core) {
        // The transport ended: the core cancels what is still waiting.
        this._core.handleEof();
        let ev2;
        while ((ev2 = this._core.pollEvent()) !== undefined) {
          if (ev2.type !== 'request') this._event(ev2);
        }
      }
      this._closed = true;
      this._closeInfo = info;
      for (const p of this._pending?.values() ?? []) p.reject(fail('ERR_CLOSED', 'connection closed', info));
      this._pending?.clear();
      for (const w of this._readyWaiters) w.reject(fail('ERR_CLOSED', 'connection closed', info));
      this._readyWaiters = [];
      this._dispose();
      this._emit('close', info);
      this._listeners.clear();
    }

    /** Drops the timers, the socket's handlers and the wasm state. */
    _dispose() {
      for (const t of [this._timer, this._closeTimer, this._drainTimer]) if (t !== null) clearTimeout(t);
      this._timer = this._closeTimer = this._drainTimer = null;
      const ws = this._ws;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      this._inputQueue = [];
      this._queuedInput = 0;
      if (this._core) {
        this._core.free();
        this._core = null;
      }
      if (this._codec) {
        this._codec.free();
        this._codec = null;
      }
    }
  }

  return {
    Codec,
    encodeBson,
    decodeBson,
    ObjectId,
    Timestamp,
    Binary,
    BsonRegExp,
    Decimal128,
    Code,
    MinKey,
    MaxKey,
    Double,
    PacketCore: wasm.PacketCore,
    Connection,
    /** `{ packetCores, codecs, memoryBytes }`: wasm objects alive and the wasm memory size. */
    memoryStats: wasm.memoryStats,
  };
}
