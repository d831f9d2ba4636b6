// Compiled (not run) by types.test.mjs: uses every export of the package the
// way the README shows, so index.d.ts must describe them all correctly.
import framewire, {
  Codec, encodeBson, decodeBson, ObjectId, Timestamp, Binary, BsonRegExp, Decimal128, Code,
  MinKey, MaxKey, Double, PacketCore, Connection, memoryStats, version,
  type FramewireError, type PacketEvent, type Response, type CloseInfo, type BsonDocument,
} from 'framewire';

const codec = new Codec('length:2:le', { maxFrameLen: 1024, oversize: 'skip' });
const frame: Uint8Array = codec.encode('hi');
const frames: Uint8Array[] = codec.push(frame);
const packed: { data: Uint8Array; ends: Uint32Array } = codec.pushPacked(new ArrayBuffer(0));
const rest: Uint8Array[] = codec.end();
const n: number = codec.stats.framesReceived + codec.buffered + codec.maxFrameLen + codec.maxBuffered;
codec.free();

const doc: BsonDocument = {
  n: 1, big: 5n, s: 'x', b: true, nil: null, d: new Date(), bytes: new Uint8Array(1), arr: [1, [2]],
  re: /x/i, oid: new ObjectId(), ts: new Timestamp(1, 2), bin: new Binary(new Uint8Array(1), 4),
  bre: new BsonRegExp('x', 'l'), dec: new Decimal128('1.5'), code: new Code('f', { a: 1 }),
  min: new MinKey(), max: new MaxKey(), dbl: new Double(1),
};
const bytes: Uint8Array = encodeBson(doc, { maxLen: 1 << 20 });
const back = decodeBson(bytes, { int64: 'number' });
const hexId: string = new ObjectId('000102030405060708090a0b').toHexString();
const big: bigint = Timestamp.fromBigInt(2n ** 63n).value;

const core = new PacketCore({ maxPacketLen: 1 << 20, acceptRequests: true });
const tag: number = core.submit(0, 0, 0, new Uint8Array(0), performance.now(), 100);
const ev: PacketEvent | undefined = core.pollEvent();
if (ev && ev.type === 'response') {
  const ok: boolean = ev.ok;
}
const out: Uint8Array | undefined = core.takeTransmit();
const at: number | undefined = core.pollTimeout();
core.free();

async function run(): Promise<void> {
  const conn = await Connection.connect('ws://127.0.0.1:1/', { codec: 'packet', mode: 'frame', highWaterMark: 1 << 20 });
  conn.serve(async ({ rqType, payload }) => ({ flags: rqType, payload }));
  conn.on('close', (info: CloseInfo) => info.code);
  conn.on('error', (e: FramewireError) => e.code);
  conn.on('object', (o) => o);
  const r: Response = await conn.request(1, { hello: 'world' }, { timeoutMs: 10, channel: 0, flags: 1 });
  await conn.ready();
  const info: CloseInfo = await conn.close();
  const framed = new Connection(() => new WebSocket('ws://127.0.0.1:1/'), { codec: 'bson' });
  framed.sendObject({ a: 1 });
  framed.send(new Uint8Array(5));
}

const stats = memoryStats();
const v: string = version + framewire.version + String(stats.packetCores + n + tag + (at ?? 0));
export { frames, packed, rest, back, hexId, big, out, run, v };
