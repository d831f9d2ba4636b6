// framewire for Node (ES module): the same instance as the CommonJS entry.
import api from './index.cjs';

export const {
  Codec, encodeBson, decodeBson, ObjectId, Timestamp, Binary, BsonRegExp, Decimal128, Code,
  MinKey, MaxKey, Double, PacketCore, Connection, memoryStats, version,
} = api;
export default api;
