import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { JWT_SECRET, SERVICE_TOKEN, userToken } from "../../support/service.ts";

/**
 * Every attack on the user credential gets the same 401, with WWW-Authenticate and no detail of
 * why. The server accepts HS256 (JWT_SECRET) and RS256 from a JWKS, with issuer and audience set.
 */
const ISSUER = "https://id.example.test";
const AUDIENCE = "entitlements";
let server: TestServer;
let jwksServer: http.Server;
let rsaPrivateKey: CryptoKey;
let rsaPublicKeyPem: string;

function encode(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

async function signed(claims: Record<string, unknown>, options: { secret?: string; exp?: number | string; nbf?: number | string } = {}) {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setIssuer(ISSUER).setAudience(AUDIENCE);
  if (options.exp !== undefined) jwt = jwt.setExpirationTime(options.exp);
  if (options.nbf !== undefined) jwt = jwt.setNotBefore(options.nbf);
  return jwt.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  rsaPrivateKey = privateKey;
  rsaPublicKeyPem = await exportSPKI(publicKey);
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" }] });
  jwksServer = http.createServer((_, response) => response.writeHead(200, { "content-type": "application/json" }).end(jwks));
  await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
  server = await startTestServer({
    userTokens: {
      secret: JWT_SECRET,
      jwksUrl: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`,
      issuer: ISSUER,
      audience: AUDIENCE,
      clockToleranceSeconds: 30,
    },
  });
});

afterAll(async () => {
  await new Promise((resolve) => jwksServer.close(resolve));
});

async function me(authorization: string | undefined) {
  return fetch(`${server.httpUrl}/v1/subscription/me`, {
    headers: authorization === undefined ? {} : { authorization },
  });
}

describe("valid credentials", () => {
  it("accepts HS256 and RS256 (JWKS) tokens", async () => {
    expect((await me(`Bearer ${await signed({ sub: "hs-user" }, { exp: "5m" })}`)).status).toBe(200);
    const rs = await new SignJWT({ sub: "rs-user" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuedAt()
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime("5m")
      .sign(rsaPrivateKey);
    const response = await me(`Bearer ${rs}`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { plan: { code: string } }).plan.code).toBe("free");
  });

  it("allows a small clock skew", async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await me(`Bearer ${await signed({ sub: "skew" }, { exp: now - 10, nbf: now + 10 })}`)).status).toBe(200);
  });
});

describe("refused credentials", () => {
  const attacks: [string, () => Promise<string | undefined>][] = [
    ["no credential", async () => undefined],
    ["a non-Bearer scheme", async () => `Basic ${Buffer.from("u:p").toString("base64")}`],
    ["alg=none", async () => `Bearer ${encode({ alg: "none", typ: "JWT" })}.${encode({ sub: "mallory", iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600 })}.`],
    ["another key", async () => `Bearer ${await signed({ sub: "mallory" }, { exp: "5m", secret: "some-other-secret-0123456789-abcdef" })}`],
    ["an expired token", async () => `Bearer ${await signed({ sub: "mallory" }, { exp: Math.floor(Date.now() / 1000) - 120 })}`],
    ["a not-yet-valid token", async () => `Bearer ${await signed({ sub: "mallory" }, { exp: "10m", nbf: Math.floor(Date.now() / 1000) + 300 })}`],
    ["a token without exp", async () => `Bearer ${await signed({ sub: "mallory" })}`],
    ["a token without sub", async () => `Bearer ${await signed({}, { exp: "5m" })}`],
    ["a wrong issuer", async () => `Bearer ${await new SignJWT({ sub: "m" }).setProtectedHeader({ alg: "HS256" }).setIssuer("https://evil.test").setAudience(AUDIENCE).setExpirationTime("5m").sign(new TextEncoder().encode(JWT_SECRET))}`],
    ["a wrong audience", async () => `Bearer ${await new SignJWT({ sub: "m" }).setProtectedHeader({ alg: "HS256" }).setIssuer(ISSUER).setAudience("other").setExpirationTime("5m").sign(new TextEncoder().encode(JWT_SECRET))}`],
    ["algorithm confusion (HS256 signed with the RSA public key)", async () => `Bearer ${await signed({ sub: "mallory" }, { exp: "5m", secret: rsaPublicKeyPem })}`],
    ["a malformed token", async () => "Bearer not.a.jwt"],
    ["garbage", async () => "Bearer %%%%"],
    ["a service token", async () => `Bearer ${SERVICE_TOKEN}`],
  ];

  it.each(attacks)("refuses %s with a bare 401", async (_, credential) => {
    const response = await me(await credential());
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe("Bearer");
    const body = (await response.json()) as { code: string; message: string; details: unknown[] };
    expect(body.code).toBe("unauthenticated");
    expect(body.details).toEqual([]);
    expect(body.message).toMatch(/^(invalid user token|a user token is required \(authorization: Bearer <JWT>\))$/);
  });

  it("refuses the usage endpoint alike", async () => {
    expect((await fetch(`${server.httpUrl}/v1/subscription/usage`)).status).toBe(401);
  });

  it("never lets a query parameter pick another user", async () => {
    const token = await signed({ sub: "self" }, { exp: "5m" });
    const response = await fetch(`${server.httpUrl}/v1/subscription/me?user_id=victim`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(400);
  });
});

describe("credential separation", () => {
  it("does not open EntitlementService with a user JWT", async () => {
    const response = await fetch(`${server.httpUrl}/entitlements.v1.EntitlementService/GetPlan`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await userToken("u")}` },
      body: JSON.stringify({ userId: "u" }),
    });
    expect(response.status).toBe(401);
  });
});
