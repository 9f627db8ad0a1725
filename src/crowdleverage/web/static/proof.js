/* Proof-of-liabilities inclusion check in the browser (the format of audit/proofs.py):

     leaf = sha256(0x00 ‖ salt(32) ‖ u128(balance) ‖ utf8(investor_id))
     node = sha256(0x01 ‖ left.hash ‖ u128(left.sum) ‖ right.hash ‖ u128(right.sum))

   ProofCheck.verify(proof, published, investorId) recomputes the root and the total from the
   downloaded proof and compares them with the root and total the platform publishes
   (/api/v1/public/transparency). Resolves {ok, root, total, reason}; reason is one of
   "malformed", "owner", "root", "total". SHA-256 by WebCrypto where the page is a secure
   context, else by the small implementation below (same results). */
(function (global) {
  'use strict';
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

  function sha256Sync(bytes) {
    const len = bytes.length, nBlocks = ((len + 9 + 63) >> 6);
    const buf = new Uint8Array(nBlocks * 64);
    buf.set(bytes); buf[len] = 0x80;
    const bits = len * 8, dv = new DataView(buf.buffer);
    dv.setUint32(buf.length - 8, Math.floor(bits / 0x100000000)); dv.setUint32(buf.length - 4, bits >>> 0);
    const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const W = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let b = 0; b < nBlocks; b++) {
      for (let i = 0; i < 16; i++) W[i] = dv.getUint32(b * 64 + i * 4);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(W[i - 15], 7) ^ rotr(W[i - 15], 18) ^ (W[i - 15] >>> 3);
        const s1 = rotr(W[i - 2], 17) ^ rotr(W[i - 2], 19) ^ (W[i - 2] >>> 10);
        W[i] = (W[i - 16] + s0 + W[i - 7] + s1) >>> 0;
      }
      let [a, bb, c, d, e, f, g, h] = H;
      for (let i = 0; i < 64; i++) {
        const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25), ch = (e & f) ^ (~e & g);
        const t1 = (h + S1 + ch + K[i] + W[i]) >>> 0;
        const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22), maj = (a & bb) ^ (a & c) ^ (bb & c);
        const t2 = (S0 + maj) >>> 0;
        h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = bb; bb = a; a = (t1 + t2) >>> 0;
      }
      H[0] += a; H[1] += bb; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
    }
    const out = new Uint8Array(32), odv = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) odv.setUint32(i * 4, H[i]);
    return out;
  }

  async function sha256(bytes) {
    if (global.crypto && global.crypto.subtle && global.isSecureContext) {
      return new Uint8Array(await global.crypto.subtle.digest('SHA-256', bytes));
    }
    return sha256Sync(bytes);
  }

  function hexToBytes(hex) {
    if (typeof hex !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error('hex');
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }
  const toHex = b => Array.from(b, x => x.toString(16).padStart(2, '0')).join('');
  function u128(v) {  // v: BigInt ≥ 0, big-endian 16 bytes
    if (v < 0n || v >= (1n << 128n)) throw new Error('range');
    const out = new Uint8Array(16);
    for (let i = 15; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
    return out;
  }
  function cat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0; for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  function int(v) {
    if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
    if (typeof v === 'string' && /^\d+$/.test(v)) return BigInt(v);
    throw new Error('int');
  }

  async function recompute(proof) {
    const leaf = proof.leaf, salt = hexToBytes(leaf.salt);
    if (salt.length !== 32) throw new Error('salt');
    let total = int(leaf.balance_fen);
    let h = await sha256(cat(Uint8Array.of(0), salt, u128(total), new TextEncoder().encode(String(leaf.investor_id))));
    for (const step of proof.path) {
      const sh = hexToBytes(step.hash), ss = int(step.sum_fen);
      if (sh.length !== 32) throw new Error('hash');
      if (step.side === 'left') h = await sha256(cat(Uint8Array.of(1), sh, u128(ss), h, u128(total)));
      else if (step.side === 'right') h = await sha256(cat(Uint8Array.of(1), h, u128(total), sh, u128(ss)));
      else throw new Error('side');
      total += ss;
    }
    return {root: toHex(h), total: total};
  }

  async function verify(proof, published, investorId) {
    let r;
    try { r = await recompute(proof); } catch (e) { return {ok: false, reason: 'malformed'}; }
    if (investorId !== undefined && String(proof.leaf.investor_id) !== String(investorId)) return {ok: false, reason: 'owner', root: r.root};
    if (r.root !== String(proof.root_hash).toLowerCase() || r.root !== String(published.root_hash || '').toLowerCase())
      return {ok: false, reason: 'root', root: r.root};
    let pubTotal;
    try { pubTotal = int(published.total_fen); } catch (e) { return {ok: false, reason: 'total', root: r.root}; }
    if (r.total !== int(proof.total_fen) || r.total !== pubTotal) return {ok: false, reason: 'total', root: r.root};
    return {ok: true, root: r.root, total: r.total.toString()};
  }

  global.ProofCheck = {verify: verify, sha256: sha256, sha256Sync: sha256Sync};
})(window);
