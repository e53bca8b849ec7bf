import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll } from "vitest";
import { Webhook } from "standardwebhooks";

/** A POST a receiver got, verified with the Standard Webhooks library's verifier. */
export type ReceivedWebhook = {
  readonly id: string;
  readonly body: { readonly type: string; readonly timestamp: string; readonly data: Record<string, unknown> };
  /** Whether the signature verified with the receiver's secret. */
  readonly verified: boolean;
  /** The status it was answered. */
  readonly status: number;
  /** The body and headers as received, to verify with other secrets. */
  readonly payload: string;
  readonly headers: Record<string, string>;
};

/** Whether the library's verifier accepts the POST with `secret`. */
export function verifiesWith(post: Pick<ReceivedWebhook, "payload" | "headers">, secret: string): boolean {
  try {
    new Webhook(secret).verify(post.payload, post.headers);
    return true;
  } catch {
    return false;
  }
}

/**
 * An HTTP endpoint on a free port that records what it is sent; `answer` decides each status
 * (default 200), and may delay the answer by returning a promise.
 */
export async function startWebhookReceiver(options: { answer?: (index: number, body: ReceivedWebhook["body"]) => number | Promise<number> } = {}) {
  const received: ReceivedWebhook[] = [];
  let secret = "";
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const payload = Buffer.concat(chunks).toString("utf8");
      const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
      const body = JSON.parse(payload) as ReceivedWebhook["body"];
      const post = { id: headers["webhook-id"] ?? "", body, payload, headers };
      const verified = verifiesWith(post, secret);
      void Promise.resolve(options.answer?.(received.length, body) ?? 200).then((status) => {
        received.push({ ...post, verified, status });
        response.writeHead(status).end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    /** The secret signatures are verified with (the endpoint's, once made). */
    useSecret(value: string) {
      secret = value;
    },
  };
}
