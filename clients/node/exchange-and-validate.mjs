// Interop check used by tests/integration/test_node_client.py: reads
// {"sts", "subject_token", "audience", "scopes"} as JSON on stdin, exchanges
// the subject token at the STS, validates the result there, and prints one
// JSON line of facts. Tokens are never printed, only their ids.
import { describeError, exchangeToken, stsClient, validateToken } from './wif-client.mjs';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function main() {
  const input = await readStdin();
  const client = stsClient(input.sts);
  try {
    const issued = await exchangeToken(client, input.subject_token, {
      audience: [input.audience],
      scopes: input.scopes ?? [],
    });
    const valid = await validateToken(client, issued.accessToken, { audience: input.audience });
    return {
      exchanged: {
        tokenId: issued.tokenId,
        tokenType: issued.tokenType,
        expiresIn: Number(issued.expiresIn),
        scope: issued.scope,
      },
      validated: {
        subject: valid.subject,
        tokenId: valid.tokenId,
        audience: valid.claims?.aud ?? null,
      },
    };
  } catch (error) {
    return { error: describeError(error) };
  }
}

process.stdout.write(`${JSON.stringify(await main())}\n`);
