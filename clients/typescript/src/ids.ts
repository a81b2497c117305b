/**
 * Event ids: UUIDv7 (RFC 9562), which sort by creation time.
 *
 * A publisher sets each event's `id`; a retry with the same id is stored once
 * (PRODUCT.md guarantee 3). Ids made by one page or process increase
 * strictly: the 12 bits after the millisecond timestamp count within a
 * millisecond (RFC 9562 § 6.2, method 1), starting at a random value.
 *
 * @module
 */

let lastMs = 0;
let lastCounter = 0;

function random(bytes: number): Uint8Array {
  // globalThis.crypto: every browser, and Node 19 on (Node 20 is the floor).
  return globalThis.crypto.getRandomValues(new Uint8Array(bytes));
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** A new UUIDv7 as its canonical 36-character string. */
export function uuid7(): string {
  const now = Date.now();
  if (now > lastMs) {
    const seed = random(2);
    lastMs = now;
    lastCounter = ((seed[0]! << 8) | seed[1]!) & 0x7ff;
  } else if (lastCounter < 0xfff) {
    lastCounter += 1;
  } else {
    // 4096 ids in one millisecond: borrow the next millisecond.
    lastMs += 1;
    lastCounter = 0;
  }
  const bytes = new Uint8Array(16);
  let ms = lastMs;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = 0x70 | (lastCounter >> 8);
  bytes[7] = lastCounter & 0xff;
  bytes.set(random(8), 8);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const h = hex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
