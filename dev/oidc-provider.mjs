#!/usr/bin/env node
// Local OpenID provider that plays a CI platform / Kubernetes cluster minting
// job tokens, for the mesh's local run and tests. Loopback only.
//
//   node dev/oidc-provider.mjs --host 127.0.0.1 --port 0 --jobs dev/jobs.json \
//       [--ready-file PATH] [--verbose]
//
// Every job in the jobs file is a confidential client (client_secret_basic or
// client_secret_post) that may only use the client_credentials grant. A job
// asks for a token with `grant_type=client_credentials&resource=<audience>`
// and gets a JWT access token whose `aud` is that resource and whose other
// claims follow the job's claim shape (dev/claims/*.json), signed with the
// job's algorithm (ES256 or RS256) and living for the job's ttl_seconds.
//
// stdout carries only the ready line `{"issuer": ..., "port": ...}`; the log
// (one line per issued token: client id and jti) goes to stderr.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';

// Claims the provider owns; the shape's values for these are placeholders.
const PROVIDER_CLAIMS = ['iss', 'aud', 'iat', 'exp', 'nbf', 'jti'];
const ALGORITHMS = new Set(['ES256', 'RS256']);

function fail(message) {
  process.stderr.write(`oidc-provider: ${message}\n`);
  process.exit(2);
}

function isLoopback(host) {
  if (host === '::1') return true;
  return net.isIPv4(host) && host.split('.')[0] === '127';
}

function log(message) {
  process.stderr.write(`oidc-provider: ${message}\n`);
}

// The library prints notices with console.info (stdout) and warnings with
// console.warn. Keep stdout for the ready line only: notices are shown on
// stderr with --verbose; warnings always go to stderr, except the expected
// one about the in-memory store, which is what a throwaway dev provider wants.
function routeLibraryOutput(verbose) {
  const { info, warn } = console;
  console.info = (...args) => {
    const text = args.map(String).join(' ');
    if (!text.startsWith('oidc-provider ')) {
      info(...args);
    } else if (verbose) {
      process.stderr.write(`${text}\n`);
    }
  };
  console.warn = (...args) => {
    const text = args.map(String).join(' ');
    if (!verbose && text.includes('in-memory adapter')) return;
    warn(...args);
  };
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`cannot read ${file}: ${err.message}`);
  }
}

// Builds the claim set a job's tokens carry, without the provider-owned claims.
// An override whose value is null removes the claim.
function loadJobs(jobsFile) {
  const jobs = readJson(jobsFile);
  if (!Array.isArray(jobs) || jobs.length === 0) fail(`${jobsFile}: expected a non-empty list of jobs`);
  const baseDir = path.dirname(path.resolve(jobsFile));
  const byId = new Map();
  for (const job of jobs) {
    const {
      client_id: clientId, client_secret: secret, claims, overrides = {}, ttl_seconds: ttl, alg,
    } = job;
    if (typeof clientId !== 'string' || !clientId) fail('a job has no client_id');
    if (byId.has(clientId)) fail(`duplicate job ${clientId}`);
    if (typeof secret !== 'string' || secret.length < 8) fail(`job ${clientId}: client_secret too short`);
    if (!Number.isInteger(ttl) || ttl < 1) fail(`job ${clientId}: ttl_seconds must be a positive integer`);
    if (!ALGORITHMS.has(alg)) fail(`job ${clientId}: alg must be ES256 or RS256`);
    if (typeof claims !== 'string') fail(`job ${clientId}: claims must name a file`);
    const shape = { ...readJson(path.resolve(baseDir, claims)), ...overrides };
    for (const [name, value] of Object.entries(shape)) {
      if (value === null || PROVIDER_CLAIMS.includes(name)) delete shape[name];
    }
    byId.set(clientId, {
      clientId, secret, ttl, alg, typ: job.typ === 'JWT' ? 'JWT' : undefined, claims: shape,
    });
  }
  return byId;
}

async function signingKey(alg) {
  const options = alg === 'RS256' ? { modulusLength: 2048, extractable: true } : { extractable: true };
  const { privateKey } = await generateKeyPair(alg, options);
  const jwk = await exportJWK(privateKey);
  jwk.kid = await calculateJwkThumbprint(jwk);
  jwk.alg = alg;
  jwk.use = 'sig';
  return jwk;
}

function writeReadyFile(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      jobs: { type: 'string', default: 'dev/jobs.json' },
      'ready-file': { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
  });
  if (!isLoopback(args.host)) fail(`--host must be a loopback address (127.0.0.0/8 or ::1), got ${args.host}`);
  const port = Number(args.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${args.port}`);

  routeLibraryOutput(args.verbose);
  const { default: Provider, errors } = await import('oidc-provider');

  const jobs = loadJobs(args.jobs);
  const keys = [await signingKey('ES256'), await signingKey('RS256')];

  // Listen first so the issuer can carry the real port.
  let handler = (req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, args.host, resolve);
  });
  const { port: boundPort } = server.address();
  const hostPart = net.isIPv6(args.host) ? `[${args.host}]` : args.host;
  const issuer = `http://${hostPart}:${boundPort}`;

  const jobFor = (client) => jobs.get(client?.clientId);

  const provider = new Provider(issuer, {
    clients: [...jobs.values()].map((job) => ({
      client_id: job.clientId,
      client_secret: job.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      // The provider accepts client_secret_post as well for this method.
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    jwks: { keys },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource(_ctx, _client, oneOf) {
          if (oneOf) return oneOf;
          throw new errors.InvalidTarget('a resource parameter naming the audience is required');
        },
        useGrantedResource: () => false,
        getResourceServerInfo(ctx, resource, client) {
          const job = jobFor(client);
          if (!job) throw new errors.InvalidTarget();
          return {
            scope: '',
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: job.ttl,
            jwt: { sign: { alg: job.alg } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials(_ctx, _token, client) {
        return jobFor(client)?.ttl ?? 60;
      },
    },
    formats: {
      customizers: {
        jwt(_ctx, token, jwt) {
          const job = jobFor(token.client);
          if (!job) return;
          const {
            iss, aud, iat, exp, jti, sub,
          } = jwt.payload;
          jwt.payload = {
            iss,
            sub,
            aud,
            ...structuredClone(job.claims),
            iat,
            nbf: iat,
            exp,
            jti,
          };
          if (job.typ) jwt.header = { typ: job.typ };
        },
      },
    },
  });

  provider.on('client_credentials.issued', (token) => {
    log(`issued token client_id=${token.clientId} jti=${token.jti}`);
  });
  provider.on('server_error', (_ctx, err) => {
    log(`server error: ${err.message}`);
  });

  handler = provider.callback();

  const ready = JSON.stringify({ issuer, port: boundPort });
  if (args['ready-file']) writeReadyFile(args['ready-file'], ready);
  process.stdout.write(`${ready}\n`);

  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`oidc-provider: ${err.stack || err}\n`);
  process.exit(1);
});
