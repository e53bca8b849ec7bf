import { describe, expect, it } from "vitest";
import { compilePathTemplate, PathTemplateError } from "../../../src/transport/http/path-template.ts";

describe("compilePathTemplate", () => {
  it("matches literal paths exactly", () => {
    const template = compilePathTemplate("/v1/subscription/me");
    expect(template.match("/v1/subscription/me")).toEqual(new Map());
    expect(template.match("/v1/subscription/me/")).toBeUndefined();
    expect(template.match("/v1/subscription")).toBeUndefined();
  });

  it("binds single-segment variables, percent-decoded", () => {
    const template = compilePathTemplate("/v1/users/{user_id}/usage/{metric}");
    expect(template.fieldPaths).toEqual(["user_id", "metric"]);
    expect(template.match("/v1/users/alice%40example.com/usage/jobs")).toEqual(
      new Map([["user_id", "alice@example.com"], ["metric", "jobs"]]),
    );
    expect(template.match("/v1/users/a/b/usage/jobs")).toBeUndefined();
  });

  it("binds patterned and multi-segment variables", () => {
    expect(compilePathTemplate("/v1/{name=plans/*}").match("/v1/plans/pro")).toEqual(new Map([["name", "plans/pro"]]));
    expect(compilePathTemplate("/v1/files/{path=**}").match("/v1/files/a/b/c.txt")).toEqual(new Map([["path", "a/b/c.txt"]]));
  });

  it("matches a custom verb", () => {
    const template = compilePathTemplate("/v1/accounts/{user_id}:suspend");
    expect(template.match("/v1/accounts/bob:suspend")).toEqual(new Map([["user_id", "bob"]]));
    expect(template.match("/v1/accounts/bob")).toBeUndefined();
  });

  it("refuses a bound value that is not well-formed UTF-8, naming its field", () => {
    const template = compilePathTemplate("/v1/users/{user_id}");
    for (const path of ["/v1/users/%E0%A4%A", "/v1/users/u-%FF", "/v1/users/u-%C0%80"]) {
      expect(() => template.match(path), path).toThrowError(expect.objectContaining({ violations: [{ field: "user_id", description: "is not well-formed UTF-8" }] }));
    }
    expect(template.match("/v1/users/100%")).toEqual(new Map([["user_id", "100%"]]));
  });

  it("refuses malformed templates", () => {
    for (const bad of ["v1/x", "/v1/{a", "/v1/{a}/{a}", "/v1/**/x", "/v1/{a=**}/x", "/v1/{1a}"]) {
      expect(() => compilePathTemplate(bad), bad).toThrow(PathTemplateError);
    }
  });
});
