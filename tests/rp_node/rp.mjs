// A relying party on openid-client (https://github.com/panva/openid-client), as an application
// would use it, for tests/test_browser_signin.py:
//   node rp.mjs start  '{"issuer","client_id","redirect_uri","alg"}'  -> {"url","verifier","state","nonce"}
//   node rp.mjs finish '{..., "callback","verifier","state","nonce"}' -> {"claims","userinfo","refreshed"}
// Discovery, PKCE S256, state, nonce, the RFC 9207 iss check, ID-token validation, userinfo and
// refresh are all openid-client's own; plain http is allowed only because the test issuer is loopback.
import * as client from "openid-client";

const [mode, raw] = process.argv.slice(2);
const args = JSON.parse(raw);
const config = await client.discovery(
  new URL(args.issuer),
  args.client_id,
  { id_token_signed_response_alg: args.alg },
  client.None(),
  { execute: [client.allowInsecureRequests] },
);

if (mode === "start") {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: args.redirect_uri,
    scope: "openid profile email",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  });
  console.log(JSON.stringify({ url: url.href, verifier, state, nonce }));
} else {
  const tokens = await client.authorizationCodeGrant(config, new URL(args.callback), {
    pkceCodeVerifier: args.verifier,
    expectedState: args.state,
    expectedNonce: args.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  console.log(JSON.stringify({ claims, userinfo, refreshed: refreshed.claims() }));
}
