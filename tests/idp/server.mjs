// Test-only OpenID Provider for the aiworklab integration and browser tests.
//
//   node tests/idp/server.mjs --config <path-to-json> [--exit-with-stdin] [--quiet]
//                             [--host <ip>] [--tls-cert <pem> --tls-key <pem>]
//
// Listens on 127.0.0.1 (or --host), prints exactly one JSON line to stdout
// once listening:
//   {"issuer":"http://127.0.0.1:<port>","port":<port>}
// (https://<host>:<port> with --tls-cert and --tls-key)
// and logs everything else to stderr. See README.md next to this file.
//
// NEVER use this outside of tests: passwords are public, keys live in memory,
// consent is implied and /__test/* lets anyone rotate the signing keys.

import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { parseArgs, promisify } from 'node:util';

// stdout carries exactly one line (the readiness line). oidc-provider prints
// some notices with console.info (stdout), so every console method that would
// write to stdout is rerouted to stderr before the library is loaded.
for (const method of ['log', 'info', 'debug']) {
  // eslint-disable-next-line no-console
  console[method] = (...args) => console.error(...args);
}

// ---------------------------------------------------------------------------
// signing keys (generated in the thread pool)

let keyGeneration = 0;
const generateKeyPairAsync = promisify(generateKeyPair);

async function generateKeys() {
  keyGeneration += 1;
  const tag = `${keyGeneration}-${randomBytes(4).toString('hex')}`;
  const [rsaPair, ecPair] = await Promise.all([
    generateKeyPairAsync('rsa', { modulusLength: 2048 }),
    generateKeyPairAsync('ec', { namedCurve: 'P-256' }),
  ]);
  const rsa = rsaPair.privateKey.export({ format: 'jwk' });
  const ec = ecPair.privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `aiwl-test-rs256-${tag}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `aiwl-test-es256-${tag}`, alg: 'ES256', use: 'sig' },
  ];
}

// Generate the first signing keys (thread pool) while the library loads.
const initialKeys = generateKeys();
const { default: Provider } = await import('oidc-provider');

const ACR_PWD = 'urn:aiwl:acr:pwd';
const ACR_MFA = 'urn:aiwl:acr:mfa';
const DEFAULT_PASSWORD = 'correct horse';

const BUILTIN_USERS = [
  { login: 'alice', email: 'alice@acme.test', name: 'Alice Admin', groups: ['aiwl-admins', 'eng'] },
  { login: 'bob', email: 'bob@acme.test', name: 'Bob Builder', groups: ['eng'] },
  { login: 'carol', email: 'carol@other.test', name: 'Carol Contractor', groups: [] },
  { login: 'mallory', email: 'mallory@evil.test', name: 'Mallory Malicious', groups: ['aiwl-admins'] },
];

// ---------------------------------------------------------------------------
// arguments and configuration

function die(message) {
  process.stderr.write(`[idp] fatal: ${message}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      config: { type: 'string' },
      'exit-with-stdin': { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      host: { type: 'string', default: '127.0.0.1' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
    },
  }));
} catch (err) {
  die(err.message);
}
if (!args.config) die('usage: node server.mjs --config <path-to-json> [--exit-with-stdin] [--quiet]');

let config;
try {
  config = JSON.parse(readFileSync(args.config, 'utf8'));
} catch (err) {
  die(`cannot read config ${args.config}: ${err.message}`);
}

const port = config.port ?? 0;
if (!Number.isInteger(port) || port < 0 || port > 65535) die('config.port must be an integer 0..65535');

if (!Array.isArray(config.clients) || config.clients.length === 0) {
  die('config.clients must be a non-empty array');
}

const clients = config.clients.map((c, i) => {
  if (!c || typeof c.client_id !== 'string' || !c.client_id) die(`clients[${i}].client_id is required`);
  if (!Array.isArray(c.redirect_uris) || c.redirect_uris.length === 0) {
    die(`clients[${i}].redirect_uris must be a non-empty array`);
  }
  const {
    client_id: clientId, client_secret: clientSecret, redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris = [], ...extra
  } = c;
  return {
    // any further client metadata (e.g. id_token_signed_response_alg: "ES256")
    // is passed through to oidc-provider unchanged
    token_endpoint_auth_method: clientSecret ? 'client_secret_basic' : 'none',
    ...extra,
    client_id: clientId,
    ...(clientSecret ? { client_secret: clientSecret } : {}),
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
  };
});

const users = (config.users ?? BUILTIN_USERS).map((u, i) => {
  const login = u?.login ?? u?.username;
  if (typeof login !== 'string' || !login) die(`users[${i}].login is required`);
  return {
    login,
    password: u.password ?? DEFAULT_PASSWORD,
    sub: u.sub ?? `sub-${login}`,
    email: u.email ?? `${login}@acme.test`,
    email_verified: u.email_verified ?? true,
    name: u.name ?? login,
    groups: u.groups ?? [],
  };
});
const usersBySub = new Map(users.map((u) => [u.sub, u]));

function findUserByLogin(login) {
  const wanted = String(login ?? '').trim().toLowerCase();
  if (!wanted) return undefined;
  return users.find((u) => u.login.toLowerCase() === wanted || u.email.toLowerCase() === wanted);
}

// ---------------------------------------------------------------------------
// helpers

const log = (msg) => process.stderr.write(`[idp] ${msg}\n`);

const escapeHtml = (value) => String(value ?? '')
  .replace(/&/g, '&amp;')
  .replace(/</g, '&lt;')
  .replace(/>/g, '&gt;')
  .replace(/"/g, '&quot;')
  .replace(/'/g, '&#39;');

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

const sendJson = (res, status, obj) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(obj));

// Plain pages only: no external fonts or scripts, so headless browsers without
// network access load them instantly.
function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f4f5;margin:0;padding:40px 0}
main{max-width:340px;margin:0 auto;background:#fff;padding:24px 32px;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.2)}
h1{font-size:1.4em;font-weight:500;margin-top:0}
label{display:block;margin:12px 0 4px}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:8px;font-size:1em}
label.check{display:flex;gap:8px;align-items:center}
button{margin-top:16px;width:100%;padding:10px;font-size:1em;cursor:pointer}
.error{color:#b00020;font-weight:600}
small{color:#666}
</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

function loginPage({ uid, clientId, login = '', error }) {
  const action = `/interaction/${encodeURIComponent(uid)}/login`;
  return page('Sign in - aiworklab test IdP', `<h1 id="title">Sign in</h1>
<p><small>aiworklab test identity provider &middot; client <strong id="client-id">${escapeHtml(clientId)}</strong></small></p>
${error ? `<p id="error" class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form id="login-form" method="post" action="${escapeHtml(action)}" autocomplete="off">
<label for="login">Username</label>
<input id="login" name="login" type="text" value="${escapeHtml(login)}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" value="">
<label class="check" for="mfa"><input id="mfa" name="mfa" type="checkbox" value="1"> I used a second factor</label>
<button id="submit" type="submit">Sign in</button>
</form>
<p><a id="cancel" href="/interaction/${escapeHtml(encodeURIComponent(uid))}/abort">Cancel</a></p>`);
}

function errorPage(status, error, description) {
  return page('Error - aiworklab test IdP', `<h1 id="title">Something went wrong</h1>
<p id="error" class="error">${escapeHtml(error)}</p>
${description ? `<p id="error-description">${escapeHtml(description)}</p>` : ''}
<p><small>HTTP ${status}</small></p>`);
}

// ---------------------------------------------------------------------------
// signing keys

let signingKeys = await initialKeys;
let retiredKeys = []; // still published in JWKS (verification only) after ?keep_old=1

// ---------------------------------------------------------------------------
// provider

const cookieKeys = [randomBytes(32).toString('base64url')];

async function findAccount(ctx, sub) {
  const user = usersBySub.get(sub);
  if (!user) return undefined;
  return {
    accountId: sub,
    async claims() {
      return {
        sub: user.sub,
        email: user.email,
        email_verified: user.email_verified,
        name: user.name,
        preferred_username: user.login,
        groups: [...user.groups],
      };
    },
  };
}

// Consent is implied for every configured client: the grant is created (or
// extended) with everything the authorization request asks for, so the
// consent prompt never fires.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const { Grant } = oidc.provider;
  const accountId = oidc.session.accountId;
  const clientId = oidc.client.clientId;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(clientId);

  let grant = grantId ? await Grant.find(grantId) : undefined;
  if (grant && (grant.accountId !== accountId || grant.clientId !== clientId)) grant = undefined;
  if (!grant) grant = new Grant({ accountId, clientId });

  grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  await grant.save();
  return grant;
}

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [...signingKeys, ...retiredKeys] },
    findAccount,
    loadExistingGrant,
    acrValues: [ACR_PWD, ACR_MFA],
    claims: {
      // auth_time, acr and amr ride along with the openid scope so that they
      // are always in the ID token, not only when max_age/prompt=login is used
      openid: ['sub', 'auth_time', 'acr', 'amr'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
      sid: null,
      iss: null,
    },
    scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
    // profile/email/groups claims in the ID token itself, not only at userinfo
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { methods: ['S256'], required: () => true },
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256'],
      userinfoSigningAlgValues: ['RS256', 'ES256'],
    },
    cookies: {
      // Cookies are not isolated by port: the relying party on another
      // 127.0.0.1 port sees these, so use names it will not collide with.
      names: {
        session: 'aiwl_idp_session',
        interaction: 'aiwl_idp_interaction',
        resume: 'aiwl_idp_resume',
      },
      keys: cookieKeys,
      // SameSite=None cookies without Secure are dropped by browsers on a
      // plain-http issuer, so keep everything Lax.
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
    },
    interactions: {
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      claimsParameter: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource(ctx, form) {
          ctx.type = 'html';
          ctx.body = page('Sign out - aiworklab test IdP', `<h1 id="title">Sign out?</h1>
<p>Do you want to sign out from the aiworklab test identity provider?</p>
${form}
<button id="logout" type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button id="stay" type="submit" form="op.logoutForm">No, stay signed in</button>`);
        },
        postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = page('Signed out - aiworklab test IdP', '<h1 id="title">Signed out</h1><p id="signed-out">You have been signed out.</p>');
        },
      },
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = errorPage(ctx.status, out.error, out.error_description);
    },
    clientBasedCORS: () => false,
  });

  provider.on('server_error', (ctx, err) => log(`server_error: ${err.stack || err}`));
  for (const event of ['authorization.error', 'grant.error', 'userinfo.error', 'end_session.error', 'introspection.error', 'revocation.error']) {
    provider.on(event, (ctx, err) => log(`${event}: ${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`));
  }
  return { provider, callback: provider.callback() };
}

// ---------------------------------------------------------------------------
// interactions (login page, implied consent)

async function interactionDetails(req, res) {
  try {
    return await current.provider.interactionDetails(req, res);
  } catch (err) {
    send(res, 400, 'text/html; charset=utf-8', errorPage(400, 'invalid_request', `login session expired or not found (${err.error_description || err.message}); start the sign-in again from the application`));
    return undefined;
  }
}

async function grantConsent(provider, details, req, res) {
  const { prompt: { details: missing }, params, session } = details;
  let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  if (!grant) grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function handleInteraction(req, res, uid, action) {
  const { provider } = current;
  const details = await interactionDetails(req, res);
  if (!details) return;
  if (details.uid !== uid) {
    send(res, 400, 'text/html; charset=utf-8', errorPage(400, 'invalid_request', 'interaction mismatch; start the sign-in again from the application'));
    return;
  }
  const clientId = details.params.client_id;

  if (action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (details.prompt.name === 'consent') {
    await grantConsent(provider, details, req, res);
    return;
  }

  if (action === 'show' && req.method === 'GET') {
    send(res, 200, 'text/html; charset=utf-8', loginPage({
      uid, clientId, login: details.params.login_hint ?? '',
    }));
    return;
  }

  if (action === 'login' && req.method === 'POST') {
    const form = new URLSearchParams(await readBody(req));
    const login = form.get('login') ?? '';
    const user = findUserByLogin(login);
    if (!user || form.get('password') !== user.password) {
      log(`login failed for ${JSON.stringify(login)}`);
      send(res, 200, 'text/html; charset=utf-8', loginPage({
        uid, clientId, login, error: 'Invalid username or password.',
      }));
      return;
    }
    const mfaValue = form.get('mfa');
    const mfa = mfaValue !== null && !['', '0', 'false', 'off', 'no'].includes(mfaValue.toLowerCase());

    // Signing in as somebody else than the current IdP session's user: end the
    // old IdP session silently (oidc-provider would otherwise interpose an
    // auto-submitting logout form that needs JavaScript).
    if (details.session?.accountId && details.session.accountId !== user.sub) {
      const old = details.session.uid ? await provider.Session.findByUid(details.session.uid) : undefined;
      if (old) await old.destroy();
      details.session = undefined;
      await details.persist();
    }

    log(`login ok: ${user.login} (${user.sub}) mfa=${mfa} client=${clientId}`);
    await provider.interactionFinished(req, res, {
      login: {
        accountId: user.sub,
        amr: mfa ? ['pwd', 'otp'] : ['pwd'],
        acr: mfa ? ACR_MFA : ACR_PWD,
        remember: true,
      },
    }, { mergeWithLastSubmission: false });
    return;
  }

  send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
}

// ---------------------------------------------------------------------------
// http server

let current; // { provider, callback }
let issuer;

async function handle(req, res) {
  if (!current) {
    send(res, 503, 'text/plain; charset=utf-8', 'starting\n');
    return;
  }
  const url = new URL(req.url, 'http://127.0.0.1');
  const { pathname } = url;

  if (pathname === '/__test/health') {
    sendJson(res, 200, { status: 'ok', issuer, key_generation: keyGeneration });
    return;
  }

  if (pathname === '/__test/rotate-keys') {
    if (req.method !== 'POST') {
      send(res, 405, 'text/plain; charset=utf-8', 'use POST\n', { allow: 'POST' });
      return;
    }
    const keepOld = ['1', 'true', 'yes'].includes((url.searchParams.get('keep_old') ?? '').toLowerCase());
    const fresh = await generateKeys();
    const previous = signingKeys;
    retiredKeys = keepOld ? [...previous, ...retiredKeys] : [];
    signingKeys = fresh;
    current = buildProvider(issuer);
    const body = {
      signing_kids: Object.fromEntries(signingKeys.map((k) => [k.alg, k.kid])),
      jwks_kids: [...signingKeys, ...retiredKeys].map((k) => k.kid),
      previous_kids: previous.map((k) => k.kid),
    };
    log(`keys rotated: ${JSON.stringify(body)}`);
    sendJson(res, 200, body);
    return;
  }

  const m = /^\/interaction\/([^/]+)(?:\/(login|abort))?\/?$/.exec(pathname);
  if (m) {
    await handleInteraction(req, res, decodeURIComponent(m[1]), m[2] ?? 'show');
    return;
  }

  await current.callback(req, res);
}

if (Boolean(args['tls-cert']) !== Boolean(args['tls-key'])) {
  die('--tls-cert and --tls-key go together');
}
const tls = args['tls-cert']
  ? { cert: readFileSync(args['tls-cert']), key: readFileSync(args['tls-key']) }
  : undefined;
const scheme = tls ? 'https' : 'http';
const onRequest = (req, res) => {
  const started = Date.now();
  if (!args.quiet) {
    res.on('finish', () => {
      log(`${req.method} ${req.url} -> ${res.statusCode} (${Date.now() - started} ms)`);
    });
  }
  handle(req, res).catch((err) => {
    log(`unhandled error for ${req.method} ${req.url}: ${err.stack || err}`);
    if (!res.headersSent) {
      send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
    } else {
      res.destroy();
    }
  });
};
const server = tls ? https.createServer(tls, onRequest) : http.createServer(onRequest);

server.listen(port, args.host, () => {
  const actualPort = server.address().port;
  const host = args.host.includes(':') ? `[${args.host}]` : args.host;
  issuer = `${scheme}://${host}:${actualPort}`;
  try {
    current = buildProvider(issuer);
  } catch (err) {
    die(`cannot configure oidc-provider: ${err.stack || err}`);
  }
  log(`listening, ${clients.length} client(s), users: ${users.map((u) => u.login).join(', ')}`);
  process.stdout.write(`${JSON.stringify({ issuer, port: actualPort })}\n`);
});

server.on('error', (err) => die(`http server: ${err.message}`));

let stopping = false;
function shutdown(reason) {
  if (stopping) return;
  stopping = true;
  log(`shutting down (${reason})`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

if (args['exit-with-stdin']) {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}
