// Ed25519 over the UTF-8 bytes of the published body, with the browser's WebCrypto: the
// server's own "valid" flag is not used here.
const MSG = window.ATTEST_MSG;  // the page's translated labels
const unhex = h => new Uint8Array(h.match(/../g).map(b => parseInt(b, 16)));
async function verifyOne(a) {
  const key = await crypto.subtle.importKey('raw', unhex(a.public_key), {name: 'Ed25519'}, false, ['verify']);
  return crypto.subtle.verify({name: 'Ed25519'}, key, unhex(a.signature), new TextEncoder().encode(a.body));
}
async function verifyAll() {
  const r = await fetch('/api/v1/public/attestations?limit=200');
  const data = await r.json();
  for (const a of data.items) {
    const el = document.getElementById('sig-' + a.id);
    if (!el) continue;
    let ok;
    try { ok = await verifyOne(a) && (!data.trusted_key || a.public_key === data.trusted_key); }
    catch (e) { el.textContent = MSG.unsupported; el.dataset.valid = 'error'; continue; }
    el.textContent = ok ? MSG.ok : MSG.bad;
    el.className = 'sig ' + (ok ? 'sig-ok' : 'sig-bad');
    el.dataset.valid = ok ? 'true' : 'false';
  }
}
const verifyButton = document.getElementById('verify-all');
if (verifyButton) verifyButton.addEventListener('click', verifyAll);
verifyAll();
