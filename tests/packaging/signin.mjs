// Signs in to a running appliance through the test OpenID Provider
// (tests/idp/server.mjs) the way a browser does, over HTTPS, and checks that
// the account page shows an administrator. Used by tests/packaging/run.
//
//   NODE_EXTRA_CA_CERTS=ca.pem node tests/packaging/signin.mjs \
//       https://localhost:8443 default alice
//
// Exits 0 and prints one line on success; exits 1 with what went wrong.

const [base, org, login] = process.argv.slice(2);
if (!base || !org || !login) {
  process.stderr.write('usage: signin.mjs <appliance-url> <org> <login>\n');
  process.exit(2);
}

// Host-only cookie jar keyed by origin and name; paths are ignored, which is
// enough for one sign-in (the IdP's interaction cookies are per-uid anyway).
const jar = new Map();
function store(url, res) {
  const { origin } = new URL(url);
  for (const header of res.headers.getSetCookie()) {
    const pair = header.split(';')[0];
    const at = pair.indexOf('=');
    const key = `${origin} ${pair.slice(0, at)}`;
    const value = pair.slice(at + 1);
    if (value === '' || /max-age=0/i.test(header)) jar.delete(key);
    else jar.set(key, `${pair.slice(0, at)}=${value}`);
  }
}
function cookies(url) {
  const { origin } = new URL(url);
  return [...jar.entries()]
    .filter(([k]) => k.startsWith(`${origin} `))
    .map(([, v]) => v)
    .join('; ');
}

async function go(url, { method = 'GET', form } = {}) {
  const headers = { cookie: cookies(url) };
  let body;
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const res = await fetch(url, { method, headers, body, redirect: 'manual' });
  store(url, res);
  const text = await res.text();
  const location = res.headers.get('location');
  return { url, status: res.status, text, next: location && new URL(location, url).toString() };
}

// Follows redirects until a page answers 200 (or the hop limit).
async function follow(page) {
  let p = page;
  for (let i = 0; i < 10 && p.next && p.status >= 300 && p.status < 400; i += 1) {
    p = await go(p.next);
  }
  return p;
}

function fail(what, page) {
  process.stderr.write(`signin: ${what} (${page.status} ${page.url})\n${page.text.slice(0, 2000)}\n`);
  process.exit(1);
}

try {
  const form = await follow(await go(`${base}/o/${org}/login/start`));
  if (!form.text.includes('name="login"')) fail('no login form at the identity provider', form);
  const action = /action="([^"]+)"/.exec(form.text)[1].replaceAll('&amp;', '&');
  const done = await follow(await go(new URL(action, form.url).toString(), {
    method: 'POST',
    form: { login, password: 'correct horse', mfa: '1' },
  }));
  if (!done.url.startsWith(base)) fail('the identity provider did not send us back', done);
  const account = await follow(await go(`${base}/account`));
  if (account.status !== 200 || !account.text.includes('Administrator')) {
    fail(`${login} is not signed in as an administrator`, account);
  }
  process.stdout.write(`signed in as ${login} (administrator) at ${base}\n`);
} catch (err) {
  process.stderr.write(`signin: ${err.stack || err}\n`);
  process.exit(1);
}
