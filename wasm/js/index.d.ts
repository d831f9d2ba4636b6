// Types of the `framewire` npm package (browsers and Node).

/** Every error thrown or emitted by framewire is an Error with a stable `code`. */
export interface FramewireError extends Error {
  /** e.g. "ERR_FRAME_TOO_LONG", "ERR_TRUNCATED", "ERR_BSON_ENCODE", "ERR_TIMEOUT". */
  code: string;
  /** The numbers and names involved, by error (`len`, `max`, `have`, `need`, `path`, ...). */
  [detail: string]: unknown;
  /** Codec.push/end only: the payloads decoded before the error. */
  frames?: Uint8Array[];
}

/** The framewire package version. */
export const version: string;

// ----- codecs -----

/**
 * `length` (u32 big-endian), `length:W`, `length:W:le`, `length:W:be` (W = 1..8),
 * `length:varint` (BSUInt), `bson`, `lines`, `fixed:N`, `json-header`, `packet` (whole
 * cs.packetstream packets).
 */
export type CodecSpec = string;

export interface CodecOptions {
  /** The framing's limit: the whole frame for `length`, the document for `bson`,
   * the line for `lines`, the content for `json-header`, the packet for `packet`. */
  maxFrameLen?: number;
  /** What to do with a received frame over the limit (default "fail"). */
  oversize?: 'fail' | 'skip';
  /** Receive buffer limit (default the frame limit, at least 64 KiB). */
  maxBuffered?: number;
  /** `length`: added to the length field's value. */
  adjustment?: number;
  /** `length`: the length field counts the header too. */
  includesHeader?: boolean;
  /** `lines`: the delimiter, 1 to 8 bytes (default "\n"). */
  delimiter?: string | Uint8Array;
  /** `lines`: the payload includes the delimiter (socktools' line mode). */
  keepDelimiter?: boolean;
  /** `lines`: drop one "\r" before the delimiter (default true). */
  stripCr?: boolean;
  /** `json-header`: the longest header (default and maximum 65535). */
  maxHeaderLen?: number;
}

export interface CodecStats {
  framesReceived: number;
  bytesReceived: number;
  framesSkipped: number;
  bytesSkipped: number;
}

/** Bytes accepted wherever a payload is expected (strings are sent as UTF-8). */
export type BytesLike = Uint8Array | ArrayBuffer | ArrayBufferView | string;

/** A framing codec: encode payloads into frames, decode a byte stream in any chunking. */
export class Codec {
  constructor(spec: CodecSpec, options?: CodecOptions);
  /** The whole frame (header, payload, trailer) for `payload`. */
  encode(payload: BytesLike): Uint8Array;
  /** Throws if `payload` cannot be sent in this framing. */
  check(payload: BytesLike): void;
  /** Decodes a chunk; returns the payloads it completes (views of one buffer per call). */
  push(chunk: BytesLike): Uint8Array[];
  /** Like push, with every payload back to back in `data` and each one's end offset in `ends`. */
  pushPacked(chunk: BytesLike): { data: Uint8Array; ends: Uint32Array };
  /** The stream ended: the last payloads, or throws ERR_TRUNCATED inside a frame. */
  end(): Uint8Array[];
  readonly spec: string;
  readonly buffered: number;
  readonly maxBuffered: number;
  readonly maxFrameLen: number;
  readonly stats: CodecStats;
  /** Frees the wasm memory now (also done when the codec is garbage-collected). */
  free(): void;
}

// ----- BSON -----

export class ObjectId {
  /** A fresh id, or one from 24 hex digits or 12 bytes. */
  constructor(id?: string | Uint8Array);
  readonly bytes: Uint8Array;
  readonly _bsontype: 'ObjectId';
  toHexString(): string;
  toString(): string;
  toJSON(): string;
  equals(other: unknown): boolean;
  getTimestamp(): Date;
  static isValid(id: unknown): boolean;
}

/** BSON timestamp (0x11); py-bson also writes integers 2^63..2^64-1 as 0x11 (see `value`). */
export class Timestamp {
  constructor(t: number, i: number);
  readonly t: number;
  readonly i: number;
  readonly _bsontype: 'Timestamp';
  /** (t << 32) | i. */
  readonly value: bigint;
  static fromBigInt(value: bigint | number): Timestamp;
}

/** Binary data with a subtype other than 0 (subtype 0 is a plain Uint8Array). */
export class Binary {
  constructor(bytes: BytesLike, subtype?: number);
  readonly bytes: Uint8Array;
  readonly subtype: number;
  readonly _bsontype: 'Binary';
}

/** A BSON regex whose options JS RegExp cannot express (`l`, `x`). */
export class BsonRegExp {
  constructor(pattern: string, options?: string);
  readonly pattern: string;
  readonly options: string;
  readonly _bsontype: 'BSONRegExp';
}

export class Decimal128 {
  /** 16 bytes as on the wire, or a decimal string ("1.5", "-0", "NaN", "1E+10"). */
  constructor(value: BytesLike);
  readonly bytes: Uint8Array;
  readonly _bsontype: 'Decimal128';
  toString(): string;
  toJSON(): string;
  static fromString(s: string): Decimal128;
}

export class Code {
  constructor(code: string, scope?: BsonDocument | null);
  readonly code: string;
  readonly scope: BsonDocument | null;
  readonly _bsontype: 'Code';
}

export class MinKey {
  readonly _bsontype: 'MinKey';
}

export class MaxKey {
  readonly _bsontype: 'MaxKey';
}

/** Forces a number to be written as a BSON double (integral numbers are int32 otherwise). */
export class Double {
  constructor(value: number);
  readonly value: number;
  readonly _bsontype: 'Double';
  valueOf(): number;
}

/** Values encodeBson accepts. */
export type BsonValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Date
  | RegExp
  | Uint8Array
  | ArrayBuffer
  | ArrayBufferView
  | ObjectId
  | Timestamp
  | Binary
  | BsonRegExp
  | Decimal128
  | Code
  | MinKey
  | MaxKey
  | Double
  | BsonValue[]
  | BsonDocument
  | Map<string, BsonValue>;

export interface BsonDocument {
  [key: string]: BsonValue;
}

/** Values decodeBson produces. */
export type DecodedBsonValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Date
  | RegExp
  | Uint8Array
  | ObjectId
  | Timestamp
  | Binary
  | BsonRegExp
  | Decimal128
  | Code
  | MinKey
  | MaxKey
  | DecodedBsonValue[]
  | { [key: string]: DecodedBsonValue };

export interface EncodeBsonOptions {
  /** The largest document (default 16 MiB). */
  maxLen?: number;
}

export interface DecodeBsonOptions {
  /** int64 as bigint (default), or as number when it is a safe integer. */
  int64?: 'bigint' | 'number';
  /** The largest document (default 16 MiB). */
  maxLen?: number;
}

/** Encodes a plain object or Map as one BSON document. */
export function encodeBson(value: BsonDocument | Map<string, BsonValue>, options?: EncodeBsonOptions): Uint8Array;

/** Decodes exactly one BSON document. */
export function decodeBson(bytes: BytesLike, options?: DecodeBsonOptions): { [key: string]: DecodedBsonValue };

// ----- packet connection, sans-IO -----

export interface PacketOptions {
  /** Longest packet, length prefix included (default 16 MiB). */
  maxPacketLen?: number;
  /** Serve the peer's requests (default true); false answers "no request handler". */
  acceptRequests?: boolean;
  /** Our requests waiting for a response (default 1024). */
  maxPendingOutbound?: number;
  /** Peer requests delivered and not answered before input stops being taken (default 256). */
  maxInflightInbound?: number;
  /** Bytes held for the peer: partial packets and unpolled events (default maxPacketLen + 64 KiB). */
  maxReceiveBuffer?: number;
  /** Bytes queued for transmission before submit fails (default 1 MiB). */
  maxTransmitBuffer?: number;
  /** Channels besides 0 (default 16). */
  maxChannels?: number;
  /** Completed peer tags remembered to refuse reuse (default 1024). */
  maxRememberedTags?: number;
  /** Payloads up to this size are copied into the transmit buffer (default 4096). */
  copyThreshold?: number;
  /** Refuse non-canonical varints (the original accepts them; default false). */
  strictVarints?: boolean;
}

export type PacketEvent =
  | { type: 'request'; channel: number; tag: number; rqType: number; flags: number; payload: Uint8Array }
  | { type: 'response'; channel: number; tag: number; ok: boolean; flags: number; payload: Uint8Array }
  | { type: 'cancelled'; channel: number; tag: number }
  | { type: 'timeout'; channel: number; tag: number }
  | { type: 'unknownResponse'; channel: number; tag: number }
  | { type: 'peerEndedRequests' }
  | { type: 'peerClosed'; reason: 'eof-packet' | 'transport-eof' }
  | { type: 'protocolError'; error: FramewireError }
  | { type: 'closed' };

export interface PacketStats {
  packetsReceived: number;
  requestsReceived: number;
  responsesReceived: number;
  unknownResponses: number;
  requestsSent: number;
  responsesSent: number;
  requestsRefused: number;
  tagsReused: number;
  requestsDropped: number;
  timedOut: number;
  cancelled: number;
  tagsForgotten: number;
  bytesReceived: number;
  bytesIgnored: number;
  bytesSent: number;
}

/**
 * One end of a cs.packetstream connection with no I/O: hand in bytes and time, take out bytes
 * and events. After every input or command: send `takeTransmit()`, re-arm a timer for
 * `pollTimeout()`, drain `pollEvent()`. Times are milliseconds of any clock (performance.now()).
 */
export class PacketCore {
  constructor(options?: PacketOptions);
  /** Returns how many bytes were taken; fewer is back-pressure (offer the rest again later). */
  handleInput(bytes: Uint8Array): number;
  handleEof(): void;
  handleTimeout(nowMs: number): void;
  /** Returns the request's tag. */
  submit(channel: number, rqType: number, flags: number, payload: Uint8Array, nowMs: number, timeoutMs?: number): number;
  respond(channel: number, tag: number, flags: number, payload: Uint8Array): void;
  reject(channel: number, tag: number, reason: string): void;
  abandon(channel: number, tag: number): boolean;
  endRequests(): void;
  close(): void;
  openChannel(channel: number): void;
  pollEvent(): PacketEvent | undefined;
  /** Every queued byte (the queue is emptied), or undefined. */
  takeTransmit(): Uint8Array | undefined;
  /** Every queued byte, one array per packet. */
  takeTransmitPackets(): Uint8Array[];
  /** The earliest request deadline (ms), or undefined. */
  pollTimeout(): number | undefined;
  isPending(channel: number, tag: number): boolean;
  readonly transmitLen: number;
  readonly state: 'open' | 'closing' | 'closed';
  readonly pendingOutbound: number;
  readonly inflightInbound: number;
  readonly receiveBuffered: number;
  readonly stats: PacketStats;
  free(): void;
}

// ----- WebSocket connection -----

/** The part of the WHATWG WebSocket the connection uses (browsers' WebSocket, Node's `ws`). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  // The connection sets these; its handlers read `data` of message events and
  // `code`, `reason`, `wasClean` of close events.
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
}

export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}

export interface ConnectionOptions {
  /** "packet" (default: cs.packetstream requests and responses) or a codec spec for frames. */
  codec?: 'packet' | CodecSpec;
  /** "stream": WebSocket messages are arbitrary chunks of the byte stream (websockify style,
   * the default); "frame": each message is one frame's payload (one whole packet for "packet"). */
  mode?: 'stream' | 'frame';
  codecOptions?: CodecOptions;
  /** Limits of the packet state machine. */
  packet?: PacketOptions;
  /** Serves the peer's requests (same as calling serve()). */
  handler?: RequestHandler;
  /** The WebSocket implementation when `target` is a URL (default globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
  protocols?: string | string[];
  /** bufferedAmount above which a send makes the next drain event due (default 1 MiB). */
  highWaterMark?: number;
  /** bufferedAmount at or below which ready() resolves and drain fires (default highWaterMark / 4). */
  lowWaterMark?: number;
  /** How long close() waits for the peer's end of an orderly packet close (default 5000 ms). */
  closeTimeoutMs?: number;
  /** Received bytes waiting for the packet state machine before the connection fails (default 64 MiB). */
  maxQueuedInput?: number;
}

export interface IncomingRequest {
  rqType: number;
  flags: number;
  payload: Uint8Array;
  channel: number;
  tag: number;
}

/** What a handler returns: nothing, flags, a payload (bytes, string, or an object sent as BSON),
 * `{ flags, payload }`, or `[flags, payload]`. */
export type HandlerResult =
  | undefined
  | null
  | number
  | BytesLike
  | BsonDocument
  | { flags?: number; payload?: BytesLike | BsonDocument }
  | [number, BytesLike | BsonDocument];

export type RequestHandler = (request: IncomingRequest) => HandlerResult | Promise<HandlerResult>;

export interface Response {
  /** False for a failure response; its payload is the UTF-8 reason. */
  ok: boolean;
  flags: number;
  payload: Uint8Array;
}

export interface RequestOptions {
  flags?: number;
  channel?: number;
  /** Reject with ERR_TIMEOUT after this many milliseconds. */
  timeoutMs?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

export interface ConnectionEvents {
  open: () => void;
  message: (payload: Uint8Array) => void;
  object: (value: { [key: string]: DecodedBsonValue }) => void;
  close: (info: CloseInfo) => void;
  error: (error: FramewireError) => void;
  drain: () => void;
  peerEndedRequests: () => void;
  peerClosed: (reason: 'eof-packet' | 'transport-eof') => void;
  unknownResponse: (id: { channel: number; tag: number }) => void;
  handlerError: (error: unknown) => void;
}

/** A framewire connection over a WebSocket (through `framewire gateway` to a TCP service). */
export class Connection {
  constructor(target: string | URL | WebSocketLike | (() => WebSocketLike), options?: ConnectionOptions);
  /** Resolves with the connection once open. */
  static connect(target: string | URL | WebSocketLike | (() => WebSocketLike), options?: ConnectionOptions): Promise<Connection>;
  /** Resolves when the WebSocket is open; rejects if it fails first. */
  readonly opened: Promise<Connection>;
  readonly codec: string;
  readonly mode: 'stream' | 'frame';
  readonly readyState: number;
  readonly bufferedAmount: number;
  /** Requests waiting for their response. */
  readonly pending: number;
  readonly closed: boolean;
  /** The packet state machine (packet codec), or null. */
  readonly core: PacketCore | null;
  on<K extends keyof ConnectionEvents>(type: K, listener: ConnectionEvents[K]): this;
  off<K extends keyof ConnectionEvents>(type: K, listener: ConnectionEvents[K]): this;
  once<K extends keyof ConnectionEvents>(type: K, listener: ConnectionEvents[K]): this;
  /** Sends one frame (framed codecs). */
  send(payload: BytesLike): void;
  /** Sends an object as a BSON document frame. */
  sendObject(value: BsonDocument | Map<string, BsonValue>): void;
  /** Sends a request (packet codec); a plain-object payload is sent as BSON. */
  request(rqType: number, payload?: BytesLike | BsonDocument, options?: RequestOptions): Promise<Response>;
  /** Serves the peer's requests. */
  serve(handler: RequestHandler): this;
  /** Resolves when bufferedAmount is at or below lowWaterMark. */
  ready(): Promise<void>;
  /** Closes (orderly for the packet codec); resolves when the WebSocket has closed. */
  close(code?: number, reason?: string): Promise<CloseInfo>;
}

export interface MemoryStats {
  /** PacketCore objects alive (one per open packet connection). */
  packetCores: number;
  /** Codec objects alive (one per open framed connection). */
  codecs: number;
  /** Size of the wasm linear memory (grows in 64 KiB pages, never shrinks). */
  memoryBytes: number;
}

/** The wasm objects alive now and the wasm memory size. */
export function memoryStats(): MemoryStats;

declare const framewire: {
  version: typeof version;
  Codec: typeof Codec;
  encodeBson: typeof encodeBson;
  decodeBson: typeof decodeBson;
  ObjectId: typeof ObjectId;
  Timestamp: typeof Timestamp;
  Binary: typeof Binary;
  BsonRegExp: typeof BsonRegExp;
  Decimal128: typeof Decimal128;
  Code: typeof Code;
  MinKey: typeof MinKey;
  MaxKey: typeof MaxKey;
  Double: typeof Double;
  PacketCore: typeof PacketCore;
  Connection: typeof Connection;
  memoryStats: typeof memoryStats;
};
export default framewire;
