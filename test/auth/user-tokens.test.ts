import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { createUserTokenVerifier, InvalidUserTokenError } from "../../src/auth/user-tokens.ts";

const SECRET = "user-tokens-test-secret-0123456789-abc";

async function token(sub: string, expiresInSeconds: number, claims: Record<string, unknown> = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds)
    .sign(new TextEncoder().encode(SECRET));
}

describe("createUserTokenVerifier", () => {
  it("reads the user, the issue time and a plausible email", async () => {
    const verify = createUserTokenVerifier({ secret: SECRET, clockToleranceSeconds: 0 });
    const identity = await verify(await token("ada", 60, { email: "Ada@Example.com" }));
    expect(identity).toMatchObject({ userId: "ada", email: "ada@example.com" });
    expect(identity.issuedAt).toBeInstanceOf(Date);
    expect((await verify(await token("bob", 60, { email: "not an email" }))).email).toBeUndefined();
    expect((await verify(await token("eve", 60, { email: "e\u0000ve@example.com" }))).email).toBeUndefined();
  });

  it("remembers a verified token no longer than its expiry", async () => {
    const verify = createUserTokenVerifier({ secret: SECRET, clockToleranceSeconds: 0 });
    // Two seconds: "exp" is whole seconds, so a one-second token can be expired at once.
    const shortLived = await token("brief", 2);
    expect((await verify(shortLived)).userId).toBe("brief");
    expect((await verify(shortLived)).userId).toBe("brief");
    await new Promise((resolve) => setTimeout(resolve, 2100));
    await expect(verify(shortLived)).rejects.toBeInstanceOf(InvalidUserTokenError);
  });

  it("never lets a token that differs by one character hit the memory", async () => {
    const verify = createUserTokenVerifier({ secret: SECRET, clockToleranceSeconds: 0 });
    const good = await token("carol", 60);
    await verify(good);
    const tampered = `${good.slice(0, -2)}${good.at(-2) === "A" ? "B" : "A"}${good.at(-1)}`;
    await expect(verify(tampered)).rejects.toBeInstanceOf(InvalidUserTokenError);
  });

  it("refuses every token when no key is configured", async () => {
    const verify = createUserTokenVerifier({ clockToleranceSeconds: 0 });
    await expect(verify(await token("dave", 60))).rejects.toBeInstanceOf(InvalidUserTokenError);
  });
});
