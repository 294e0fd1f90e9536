// The mesh's Node.js client: the STS over gRPC (HTTP/2), with the messages
// and service descriptors `buf generate` writes to ./gen from protos/.
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

import { SecurityTokenService } from './gen/wif/v1/sts_pb.js';

export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';

// A client of the STS at `address` (host:port). The transport speaks the
// gRPC protocol over plaintext HTTP/2; pass `nodeOptions` for TLS.
export function stsClient(address, { nodeOptions, scheme = 'http' } = {}) {
  const transport = createGrpcTransport({ baseUrl: `${scheme}://${address}`, nodeOptions });
  return createClient(SecurityTokenService, transport);
}

// RFC 8693 token exchange; resolves to the ExchangeTokenResponse.
export function exchangeToken(client, subjectToken, { audience = [], scopes = [], timeoutMs = 10000 } = {}) {
  return client.exchangeToken(
    { subjectToken, subjectTokenType: TOKEN_TYPE_JWT, audience, scope: scopes },
    { timeoutMs },
  );
}

// Asks the STS whether a mesh token is valid for `audience`.
export function validateToken(client, token, { audience = '', timeoutMs = 10000 } = {}) {
  return client.validateToken({ token, audience }, { timeoutMs });
}

// A refusal as plain data: the gRPC code's name and the status message.
export function describeError(error) {
  const failure = ConnectError.from(error);
  return { code: Code[failure.code], message: failure.rawMessage };
}
