// End-to-end smoke test of the test OpenID Provider (server.mjs).
//
//   node tests/idp/smoke.mjs            (SMOKE_VERBOSE=1 also dumps the server's stderr)
//
// Starts server.mjs on an ephemeral port with a temporary config, drives the
// authorization code flow over plain HTTP (no browser) and checks discovery,
// JWKS, the login form, PKCE, ID token claims and signatures, userinfo,
// prompt=login, max_age, user switching, RP-initiated logout and key rotation.
// Exits non-zero on the first failure.

import { spawn } from 'node:child_process';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('./server.mjs', import.meta.url));
const PASSWORD = 'correct horse';
const REDIRECT_URI = 'http://127.0.0.1:1/oidc/callback'; // never contacted
const POST_LOGOUT_URI = 'http://127.0.0.1:1/signed-out';
const CLIENT = { id: 'aiwl-smoke', secret: 'smoke-secret' };
const ES_CLIENT = { id: 'aiwl-smoke-es256', secret: 'smoke-secret-es' };
const SCOPE = 'openid profile email groups';

let passed = 0;
function ok(cond, what, extra) {
  if (!cond) {
    const detail = extra === undefined ? '' : `\n  got: ${typeof extra === 'string' ? extra : JSON.stringify(extra)}`;
    throw new Error(`check failed: ${what}${detail}`);
  }
  passed += 1;
}
const eq = (actual, expected, what) => ok(
  JSON.stringify(actual) === JSON.stringify(expected),
  `${what} (expected ${JSON.stringify(expected)})`,
  actual,
);
const step = (msg) => process.stdout.write(`- ${msg}\n`);
const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
const b64url = (buf) => Buffer.from(buf).toString('base64url');

// ---------------------------------------------------------------------------
// a minimal cookie jar (name, value, path; host-only, as the IdP uses)

class CookieJar {
  constructor() { this.cookies = new Map(); }

  store(res) {
    for (const header of res.headers.getSetCookie()) {
      const [pair, ...attrs] = header.split(';').map((s) => s.trim());
      const eqAt = pair.indexOf('=');
      const name = pair.slice(0, eqAt);
      const value = pair.slice(eqAt + 1);
      let path = '/';
      let expired = value === '';
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const key = `${name};${path}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) || c.path === '/')
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

async function request(jar, url, { method = 'GET', form, headers = {} } = {}) {
  const h = { ...headers };
  const cookie = jar?.header(url);
  if (cookie) h.cookie = cookie;
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    h['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
  jar?.store(res);
  const text = await res.text();
  return { status: res.status, location: res.headers.get('location'), text, headers: res.headers };
}

// ---------------------------------------------------------------------------
// JWT helpers

function decodeJwt(jwt) {
  const parts = jwt.split('.');
  ok(parts.length === 3, 'JWT has three parts', jwt);
  return {
    header: JSON.parse(Buffer.from(parts[0], 'base64url')),
    payload: JSON.parse(Buffer.from(parts[1], 'base64url')),
    signingInput: `${parts[0]}.${parts[1]}`,
    signature: Buffer.from(parts[2], 'base64url'),
  };
}

function verifyJwt(jwt, jwks) {
  const t = decodeJwt(jwt);
  const jwk = jwks.keys.find((k) => k.kid === t.header.kid);
  ok(jwk, `JWKS contains the token's kid ${t.header.kid}`, jwks.keys.map((k) => k.kid));
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  let valid;
  if (t.header.alg === 'RS256') {
    valid = verify('sha256', Buffer.from(t.signingInput), key, t.signature);
  } else if (t.header.alg === 'ES256') {
    valid = verify('sha256', Buffer.from(t.signingInput), { key, dsaEncoding: 'ieee-p1363' }, t.signature);
  } else {
    throw new Error(`unexpected alg ${t.header.alg}`);
  }
  ok(valid, `signature of ${t.header.alg} token verifies with kid ${t.header.kid}`);
  return t;
}

// ---------------------------------------------------------------------------
// flow helpers

let issuer;
let discovery;

function newPkce() {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

function authUrl(client, extra = {}) {
  const pkce = newPkce();
  const state = b64url(randomBytes(12));
  const nonce = b64url(randomBytes(12));
  const params = {
    client_id: client.id,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: SCOPE,
    state,
    nonce,
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) if (v === undefined) delete params[k];
  const url = `${discovery.authorization_endpoint}?${new URLSearchParams(params)}`;
  return { url, pkce, state, nonce };
}

// Follows redirects until the redirect_uri (returns its URL) or an interaction
// page (returns { page, url }).
async function follow(jar, url) {
  let next = url;
  for (let hops = 0; hops < 10; hops += 1) {
    if (next.startsWith(REDIRECT_URI) || next.startsWith(POST_LOGOUT_URI)) return { callback: new URL(next) };
    const res = await request(jar, next);
    if (res.status >= 300 && res.status < 400) {
      ok(res.location, `redirect from ${next} has a Location`, res.status);
      next = new URL(res.location, next).href;
      continue;
    }
    return { page: res, url: next };
  }
  throw new Error(`too many redirects starting at ${url}`);
}

function formAction(html, pageUrl) {
  const m = /<form[^>]*id="login-form"[^>]*action="([^"]+)"/.exec(html);
  ok(m, 'login page has the login form', html.slice(0, 400));
  return new URL(m[1].replace(/&amp;/g, '&'), pageUrl).href;
}

async function submitLogin(jar, page, { login, password = PASSWORD, mfa = false }) {
  const action = formAction(page.page.text, page.url);
  const form = { login, password };
  if (mfa) form.mfa = '1';
  const res = await request(jar, action, { method: 'POST', form });
  return res;
}

// Full sign-in: authorization request, login form, redirects, code.
async function signIn(jar, client, {
  login, mfa = false, extra = {}, expectLoginPage = true,
} = {}) {
  const req = authUrl(client, extra);
  let r = await follow(jar, req.url);
  if (expectLoginPage) {
    ok(r.page, `login page shown for ${JSON.stringify(extra)}`, r.callback?.href);
    eq(r.page.status, 200, 'login page status');
    const res = await submitLogin(jar, r, { login, mfa });
    eq(res.status, 303, 'successful login answers 303');
    r = await follow(jar, new URL(res.location, r.url).href);
  } else {
    ok(r.callback, `no login page expected for ${JSON.stringify(extra)}`, r.page?.text?.slice(0, 300));
  }
  ok(r.callback, 'ended at the redirect_uri', r.page?.text?.slice(0, 300));
  const cb = r.callback;
  ok(!cb.searchParams.get('error'), 'no error at the redirect_uri', cb.href);
  eq(cb.searchParams.get('state'), req.state, 'state round-trips');
  eq(cb.searchParams.get('iss'), issuer, 'iss authorization response parameter');
  const code = cb.searchParams.get('code');
  ok(code, 'code present at redirect_uri', cb.href);
  return { ...req, code };
}

async function exchange(client, { code, pkce }, { auth = 'basic' } = {}) {
  const form = {
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT_URI,
    code_verifier: pkce.verifier,
  };
  const headers = { accept: 'application/json' };
  if (auth === 'basic') {
    const enc = (s) => encodeURIComponent(s);
    headers.authorization = `Basic ${Buffer.from(`${enc(client.id)}:${enc(client.secret)}`).toString('base64')}`;
  } else {
    form.client_id = client.id;
    form.client_secret = client.secret;
  }
  const res = await request(null, discovery.token_endpoint, { method: 'POST', form, headers });
  return { status: res.status, json: JSON.parse(res.text) };
}

async function jwks() {
  const res = await request(null, discovery.jwks_uri);
  eq(res.status, 200, 'JWKS status');
  return JSON.parse(res.text);
}

function checkIdToken(claims, {
  client, user, nonce, mfa,
}) {
  const now = Math.floor(Date.now() / 1000);
  eq(claims.iss, issuer, 'id_token iss');
  eq(claims.sub, user.sub, 'id_token sub');
  ok(claims.aud === client.id || (Array.isArray(claims.aud) && claims.aud.includes(client.id)), 'id_token aud', claims.aud);
  if (Array.isArray(claims.aud) && claims.aud.length > 1) eq(claims.azp, client.id, 'id_token azp');
  ok(Number.isInteger(claims.iat) && Math.abs(claims.iat - now) <= 5, 'id_token iat is now', claims.iat);
  ok(Number.isInteger(claims.exp) && claims.exp - claims.iat === 600, 'id_token lives 10 minutes', claims.exp - claims.iat);
  eq(claims.nonce, nonce, 'id_token nonce');
  ok(Number.isInteger(claims.auth_time) && claims.auth_time <= now && claims.auth_time > now - 120, 'id_token auth_time', claims.auth_time);
  eq(claims.amr, mfa ? ['pwd', 'otp'] : ['pwd'], 'id_token amr');
  eq(claims.acr, mfa ? 'urn:aiwl:acr:mfa' : 'urn:aiwl:acr:pwd', 'id_token acr');
  eq(claims.email, user.email, 'id_token email');
  eq(claims.email_verified, true, 'id_token email_verified');
  eq(claims.name, user.name, 'id_token name');
  eq(claims.preferred_username, user.login, 'id_token preferred_username');
  eq(claims.groups, user.groups, 'id_token groups');
}

const ALICE = {
  login: 'alice', sub: 'sub-alice', email: 'alice@acme.test', name: 'Alice Admin', groups: ['aiwl-admins', 'eng'],
};
const BOB = {
  login: 'bob', sub: 'sub-bob', email: 'bob@acme.test', name: 'Bob Builder', groups: ['eng'],
};
const CAROL = {
  login: 'carol', sub: 'sub-carol', email: 'carol@other.test', name: 'Carol Contractor', groups: [],
};

// ---------------------------------------------------------------------------
// server lifecycle

async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'aiwl-idp-smoke-'));
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({
    port: 0,
    clients: [
      {
        client_id: CLIENT.id,
        client_secret: CLIENT.secret,
        redirect_uris: [REDIRECT_URI],
        post_logout_redirect_uris: [POST_LOGOUT_URI],
      },
      {
        client_id: ES_CLIENT.id,
        client_secret: ES_CLIENT.secret,
        redirect_uris: [REDIRECT_URI],
        id_token_signed_response_alg: 'ES256',
      },
    ],
  }, null, 2));

  const child = spawn(process.execPath, [SERVER, '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = [];
  child.stderr.on('data', (d) => stderr.push(d));
  const exited = new Promise((resolve) => { child.on('exit', (code, signal) => resolve({ code, signal })); });

  const stdoutLines = [];
  const rl = createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not print its readiness line within 15 s')), 15000);
    rl.on('line', (line) => {
      stdoutLines.push(line);
      if (stdoutLines.length === 1) { clearTimeout(timer); resolve(line); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited early with ${code}:\n${Buffer.concat(stderr)}`)); });
  });
  return {
    child, first, stdoutLines, stderr, exited, cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// ---------------------------------------------------------------------------
// the test

async function main(server) {
  step('readiness line');
  const ready = JSON.parse(server.first);
  eq(Object.keys(ready), ['issuer', 'port'], 'readiness line keys');
  ok(Number.isInteger(ready.port) && ready.port > 0, 'port is a number', ready.port);
  eq(ready.issuer, `http://127.0.0.1:${ready.port}`, 'issuer format');
  issuer = ready.issuer;

  step('health');
  const health = await request(null, `${issuer}/__test/health`);
  eq(health.status, 200, 'health status');

  step('discovery');
  const disc = await request(null, `${issuer}/.well-known/openid-configuration`);
  eq(disc.status, 200, 'discovery status');
  discovery = JSON.parse(disc.text);
  eq(discovery.issuer, issuer, 'discovery issuer');
  eq(discovery.code_challenge_methods_supported, ['S256'], 'PKCE methods');
  eq(discovery.response_types_supported, ['code'], 'response types');
  ok(discovery.id_token_signing_alg_values_supported.includes('RS256'), 'RS256 supported', discovery.id_token_signing_alg_values_supported);
  ok(discovery.id_token_signing_alg_values_supported.includes('ES256'), 'ES256 supported', discovery.id_token_signing_alg_values_supported);
  ok(discovery.end_session_endpoint, 'end_session_endpoint advertised');
  ok(discovery.userinfo_endpoint, 'userinfo_endpoint advertised');
  for (const s of ['openid', 'profile', 'email', 'groups']) ok(discovery.scopes_supported.includes(s), `scope ${s} supported`);
  for (const m of ['client_secret_basic', 'client_secret_post']) ok(discovery.token_endpoint_auth_methods_supported.includes(m), `${m} supported`);

  step('JWKS');
  const keys1 = await jwks();
  const rsKid1 = keys1.keys.find((k) => k.alg === 'RS256')?.kid;
  ok(rsKid1, 'JWKS has an RS256 key', keys1);
  ok(keys1.keys.some((k) => k.alg === 'ES256'), 'JWKS has an ES256 key', keys1);
  ok(keys1.keys.every((k) => !k.d), 'JWKS has no private parts');

  step('PKCE is required');
  {
    const jar = new CookieJar();
    const { url } = authUrl(CLIENT, { code_challenge: undefined, code_challenge_method: undefined });
    const r = await follow(jar, url);
    ok(r.callback, 'request without PKCE is answered at the redirect_uri', r.page?.text?.slice(0, 300));
    eq(r.callback.searchParams.get('error'), 'invalid_request', 'missing code_challenge is rejected');
    const plain = authUrl(CLIENT, { code_challenge_method: 'plain' });
    const r2 = await follow(jar, plain.url);
    eq(r2.callback?.searchParams.get('error'), 'invalid_request', 'plain PKCE is rejected');
  }

  const jar = new CookieJar();

  step('login page and wrong password');
  let authTime1;
  {
    const req = authUrl(CLIENT);
    const r = await follow(jar, req.url);
    ok(r.page && r.page.status === 200, 'interaction page shown', r.callback?.href);
    ok(/\/interaction\/[^/]+$/.test(new URL(r.url).pathname), 'login page lives at /interaction/<uid>', r.url);
    const html = r.page.text;
    ok(/<input[^>]*name="login"/.test(html), 'login input');
    ok(/<input[^>]*name="password"[^>]*type="password"|<input[^>]*type="password"[^>]*name="password"/.test(html), 'password input');
    ok(/<input[^>]*name="mfa"[^>]*type="checkbox"|<input[^>]*type="checkbox"[^>]*name="mfa"/.test(html), 'mfa checkbox');
    ok(/<button[^>]*id="submit"[^>]*type="submit"|<button[^>]*type="submit"[^>]*id="submit"/.test(html), 'submit button');
    ok(/I used a second factor/.test(html), 'mfa label');
    ok(!/<script/i.test(html), 'login page has no JavaScript');

    const bad = await submitLogin(jar, r, { login: 'alice', password: 'wrong' });
    eq(bad.status, 200, 'wrong password re-renders the page');
    ok(/id="error"/.test(bad.text) && /Invalid username or password/.test(bad.text), 'wrong password shows an error', bad.text.slice(0, 500));
    ok(/name="login"[^>]*value="alice"|value="alice"[^>]*name="login"/.test(bad.text), 'login name kept after an error');
    const unknown = await submitLogin(jar, r, { login: 'nobody', password: PASSWORD });
    ok(/id="error"/.test(unknown.text), 'unknown user shows an error');

    step('login as alice with MFA, code exchange with client_secret_basic');
    const good = await submitLogin(jar, r, { login: 'alice', mfa: true });
    eq(good.status, 303, 'good login answers 303');
    const done = await follow(jar, new URL(good.location, r.url).href);
    ok(done.callback, 'reached redirect_uri', done.page?.text?.slice(0, 300));
    eq(done.callback.searchParams.get('state'), req.state, 'state');
    const code = done.callback.searchParams.get('code');
    ok(code, 'code');

    const badVerifier = await exchange(CLIENT, { code, pkce: { verifier: b64url(randomBytes(32)) } });
    eq(badVerifier.status, 400, 'wrong code_verifier rejected');
    eq(badVerifier.json.error, 'invalid_grant', 'wrong code_verifier error');

    // the failed attempt above consumed the code, so sign in again (SSO, no form)
    const again = await signIn(jar, CLIENT, { expectLoginPage: false });
    const tok = await exchange(CLIENT, again);
    eq(tok.status, 200, 'token endpoint status');
    ok(tok.json.access_token && tok.json.id_token, 'access and ID token issued', tok.json);
    eq(tok.json.token_type, 'Bearer', 'token_type');
    const keys = await jwks();
    const t = verifyJwt(tok.json.id_token, keys);
    eq(t.header.alg, 'RS256', 'default ID token alg');
    eq(t.header.kid, rsKid1, 'signed with the current RS256 key');
    checkIdToken(t.payload, {
      client: CLIENT, user: ALICE, nonce: again.nonce, mfa: true,
    });
    authTime1 = t.payload.auth_time;
    process.stdout.write(`  claims: ${Object.keys(t.payload).sort().join(', ')}\n`);

    step('userinfo');
    const ui = await request(null, discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tok.json.access_token}` } });
    eq(ui.status, 200, 'userinfo status');
    const info = JSON.parse(ui.text);
    eq(info.sub, ALICE.sub, 'userinfo sub');
    eq(info.email, ALICE.email, 'userinfo email');
    eq(info.email_verified, true, 'userinfo email_verified');
    eq(info.name, ALICE.name, 'userinfo name');
    eq(info.preferred_username, ALICE.login, 'userinfo preferred_username');
    eq(info.groups, ALICE.groups, 'userinfo groups');

    const reuse = await exchange(CLIENT, again);
    eq(reuse.json.error, 'invalid_grant', 'a code cannot be redeemed twice');
  }

  step('client_secret_post works too');
  {
    const s = await signIn(jar, CLIENT, { expectLoginPage: false });
    const tok = await exchange(CLIENT, s, { auth: 'post' });
    eq(tok.status, 200, 'client_secret_post token status');
    const wrong = await exchange({ ...CLIENT, secret: 'nope' }, await signIn(jar, CLIENT, { expectLoginPage: false }));
    eq(wrong.status, 401, 'wrong client secret rejected');
  }

  step('prompt=login forces a fresh login and a new auth_time');
  {
    await sleep(1100);
    const s = await signIn(jar, CLIENT, { login: 'alice', mfa: false, extra: { prompt: 'login' } });
    const tok = await exchange(CLIENT, s);
    const t = verifyJwt(tok.json.id_token, await jwks());
    checkIdToken(t.payload, {
      client: CLIENT, user: ALICE, nonce: s.nonce, mfa: false,
    });
    ok(t.payload.auth_time > authTime1, 'auth_time moved forward', { before: authTime1, after: t.payload.auth_time });
    authTime1 = t.payload.auth_time;
  }

  step('max_age is honoured');
  {
    const fresh = await signIn(jar, CLIENT, { extra: { max_age: '60' }, expectLoginPage: false });
    const t1 = decodeJwt((await exchange(CLIENT, fresh)).json.id_token).payload;
    eq(t1.auth_time, authTime1, 'max_age=60 reuses the session');
    await sleep(2100);
    const s = await signIn(jar, CLIENT, { login: 'alice', mfa: true, extra: { max_age: '1' } });
    const t2 = decodeJwt((await exchange(CLIENT, s)).json.id_token).payload;
    ok(t2.auth_time > authTime1, 'max_age=1 forced a new login', { before: authTime1, after: t2.auth_time });
    eq(t2.amr, ['pwd', 'otp'], 'amr after MFA login');
  }

  step('switching user at prompt=login');
  {
    const s = await signIn(jar, CLIENT, { login: 'bob', extra: { prompt: 'login' } });
    const tok = await exchange(CLIENT, s);
    const t = verifyJwt(tok.json.id_token, await jwks());
    checkIdToken(t.payload, {
      client: CLIENT, user: BOB, nonce: s.nonce, mfa: false,
    });
  }

  step('ES256 client and a user without groups');
  {
    const jar2 = new CookieJar();
    const s = await signIn(jar2, ES_CLIENT, { login: 'carol' });
    const tok = await exchange(ES_CLIENT, s);
    eq(tok.status, 200, 'ES256 client token status');
    const t = verifyJwt(tok.json.id_token, await jwks());
    eq(t.header.alg, 'ES256', 'ES256 client gets ES256 ID tokens');
    checkIdToken(t.payload, {
      client: ES_CLIENT, user: CAROL, nonce: s.nonce, mfa: false,
    });
  }

  step('cancel at the login page');
  {
    const jar3 = new CookieJar();
    const req = authUrl(CLIENT);
    const r = await follow(jar3, req.url);
    const abort = await follow(jar3, `${r.url}/abort`);
    eq(abort.callback?.searchParams.get('error'), 'access_denied', 'cancel returns access_denied');
  }

  step('RP-initiated logout');
  {
    const s = await signIn(jar, CLIENT, { expectLoginPage: false });
    const tok = await exchange(CLIENT, s);
    const url = `${discovery.end_session_endpoint}?${new URLSearchParams({
      id_token_hint: tok.json.id_token, post_logout_redirect_uri: POST_LOGOUT_URI, state: 'bye',
    })}`;
    const page = await request(jar, url);
    eq(page.status, 200, 'logout confirmation page');
    ok(/id="logout"/.test(page.text), 'logout button present');
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.text)?.[1];
    const action = /<form[^>]*action="([^"]+)"/.exec(page.text)?.[1];
    ok(xsrf && action, 'logout form has action and xsrf', page.text.slice(0, 600));
    const confirm = await request(jar, new URL(action, issuer).href, { method: 'POST', form: { xsrf, logout: 'yes' } });
    eq(confirm.status, 303, 'logout confirm redirects');
    const target = new URL(confirm.location);
    eq(`${target.origin}${target.pathname}`, POST_LOGOUT_URI, 'redirected to post_logout_redirect_uri');
    eq(target.searchParams.get('state'), 'bye', 'logout state');
    const after = await follow(jar, authUrl(CLIENT).url);
    ok(after.page, 'after logout the login page is shown again', after.callback?.href);
  }

  step('key rotation');
  {
    const oldToken = (await exchange(CLIENT, await signIn(jar, CLIENT, { login: 'alice' }))).json.id_token;
    const before = await jwks();
    const rot = await request(null, `${issuer}/__test/rotate-keys`, { method: 'POST' });
    eq(rot.status, 200, 'rotate status');
    const rotated = JSON.parse(rot.text);
    const after = await jwks();
    const newRs = after.keys.find((k) => k.alg === 'RS256')?.kid;
    ok(newRs && newRs !== rsKid1, 'RS256 kid changed', { before: rsKid1, after: newRs });
    eq(rotated.signing_kids.RS256, newRs, 'rotate response names the new RS256 kid');
    ok(before.keys.every((k) => !after.keys.some((a) => a.kid === k.kid)), 'old keys are gone from JWKS');

    const jar4 = new CookieJar();
    const s = await signIn(jar4, CLIENT, { login: 'alice', mfa: true });
    const tok = await exchange(CLIENT, s);
    const t = decodeJwt(tok.json.id_token);
    eq(t.header.kid, newRs, 'new ID tokens are signed with the new key');
    ok(!before.keys.some((k) => k.kid === t.header.kid), 'kid unknown to the old JWKS');
    verifyJwt(tok.json.id_token, after);
    checkIdToken(t.payload, {
      client: CLIENT, user: ALICE, nonce: s.nonce, mfa: true,
    });

    const endSession = (hint) => request(new CookieJar(), `${discovery.end_session_endpoint}?${new URLSearchParams({ id_token_hint: hint })}`);
    eq((await endSession(oldToken)).status, 400, 'id_token_hint signed by a dropped key is rejected at logout');

    // sessions survive a rotation (the provider is rebuilt behind the same server)
    const sso = await signIn(jar4, CLIENT, { expectLoginPage: false });
    eq((await exchange(CLIENT, sso)).status, 200, 'session survives rotation');

    const rot2 = JSON.parse((await request(null, `${issuer}/__test/rotate-keys?keep_old=1`, { method: 'POST' })).text);
    const after2 = await jwks();
    ok(after2.keys.some((k) => k.kid === newRs), 'keep_old=1 keeps the previous key in JWKS');
    const s2 = await signIn(jar4, CLIENT, { expectLoginPage: false });
    const t2 = decodeJwt((await exchange(CLIENT, s2)).json.id_token);
    eq(t2.header.kid, rot2.signing_kids.RS256, 'keep_old=1 still signs with the newest key');
    ok(t2.header.kid !== newRs, 'newest key differs from the previous one');
    eq((await endSession(tok.json.id_token)).status, 200, 'id_token_hint signed by a kept old key is accepted at logout');
  }

  step('stdout carries only the readiness line');
  eq(server.stdoutLines.length, 1, 'stdout line count');
}

const server = await startServer();
let failed = false;
try {
  await main(server);
} catch (err) {
  failed = true;
  process.stderr.write(`\nFAIL: ${err.stack || err}\n`);
  process.stderr.write(`\n--- server stderr (last 4 KiB) ---\n${Buffer.concat(server.stderr).toString().slice(-4096)}\n`);
}

server.child.kill('SIGTERM');
const exit = await Promise.race([server.exited, sleep(5000).then(() => null)]);
if (!exit) {
  failed = true;
  process.stderr.write('FAIL: server did not exit within 5 s of SIGTERM\n');
  server.child.kill('SIGKILL');
} else if (!failed && exit.code !== 0) {
  failed = true;
  process.stderr.write(`FAIL: server exited with ${JSON.stringify(exit)} after SIGTERM\n`);
}
if (!failed && server.stdoutLines.length !== 1) {
  failed = true;
  process.stderr.write(`FAIL: server wrote ${server.stdoutLines.length} stdout lines\n`);
}
server.cleanup();
if (process.env.SMOKE_VERBOSE) process.stderr.write(`--- server stderr ---\n${Buffer.concat(server.stderr)}`);

if (failed) process.exit(1);
process.stdout.write(`\nOK: ${passed} checks passed, server exited cleanly on SIGTERM\n`);
