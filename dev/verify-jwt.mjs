#!/usr/bin/env node
// Independent JWT check with the npm `jose` package, to cross-check tokens the
// mesh or the dev OpenID provider mint.
//
//   node dev/verify-jwt.mjs --jwks-url URL --issuer ISS --audience AUD \
//       [--algorithms ES256,RS256] < token
//
// Prints the verified payload as JSON and exits 0, or prints
// {"error": "<jose error code>", "message": "..."} and exits 1. The token is
// never printed. Only loopback JWKS URLs are fetched.

import * as net from 'node:net';
import { parseArgs } from 'node:util';

import { createRemoteJWKSet, jwtVerify } from 'jose';

function report(code, message) {
  process.stdout.write(`${JSON.stringify({ error: code, message })}\n`);
  process.exit(1);
}

function isLoopbackUrl(url) {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === '::1' || host === 'localhost') return true;
  return net.isIPv4(host) && host.split('.')[0] === '127';
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8').trim();
}

async function main() {
  let args;
  try {
    ({ values: args } = parseArgs({
      options: {
        'jwks-url': { type: 'string' },
        issuer: { type: 'string' },
        audience: { type: 'string' },
        algorithms: { type: 'string', default: 'ES256,RS256' },
      },
    }));
  } catch (err) {
    return report('ERR_USAGE', err.message);
  }
  for (const name of ['jwks-url', 'issuer', 'audience']) {
    if (!args[name]) return report('ERR_USAGE', `--${name} is required`);
  }
  let jwksUrl;
  try {
    jwksUrl = new URL(args['jwks-url']);
  } catch {
    return report('ERR_USAGE', '--jwks-url is not a URL');
  }
  if (!['http:', 'https:'].includes(jwksUrl.protocol) || !isLoopbackUrl(jwksUrl)) {
    return report('ERR_USAGE', '--jwks-url must be an http(s) URL on a loopback address');
  }
  const algorithms = args.algorithms.split(',').map((alg) => alg.trim()).filter(Boolean);

  const token = await readStdin();
  if (!token) return report('ERR_USAGE', 'no token on stdin');

  const jwks = createRemoteJWKSet(jwksUrl, { timeoutDuration: 5000 });
  try {
    const { payload } = await jwtVerify(token, jwks, {
      issuer: args.issuer,
      audience: args.audience,
      algorithms,
    });
    process.stdout.write(`${JSON.stringify(payload)}\n`);
    return undefined;
  } catch (err) {
    return report(err.code || 'ERR_UNKNOWN', err.message);
  }
}

main();
