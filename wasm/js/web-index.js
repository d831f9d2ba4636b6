// framewire for browsers (ES module): the wasm module is fetched and
// instantiated before this module finishes loading (top-level await).
import init, * as wasm from './framewire_wasm.js';
import { makeApi } from '../lib/api.mjs';

await init({ module_or_path: new URL('./framewire_wasm_bg.wasm', import.meta.url) });
const api = { ...makeApi(wasm), version: '@VERSION@' };

export const {
  Codec, encodeBson, decodeBson, ObjectId, Timestamp, Binary, BsonRegExp, Decimal128, Code,
  MinKey, MaxKey, Double, PacketCore, Connection, memoryStats, version,
} = api;
export default api;
