import { describe, expect, it } from "vitest";
import { Coalescer } from "../../src/db/coalescer.ts";

describe("Coalescer", () => {
  it("runs a lone call at once, and batches what arrives meanwhile, in order", async () => {
    const batches: number[][] = [];
    const coalescer = new Coalescer<number, number>(
      async (inputs) => {
        batches.push([...inputs]);
        await new Promise((resolve) => setTimeout(resolve, 5));
        return inputs.map((n) => n * 10);
      },
      { maxConcurrent: 1 },
    );
    const outputs = await Promise.all([1, 2, 3, 4].map((n) => coalescer.submit(n)));
    expect(outputs).toEqual([10, 20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it("fails every call of a failed batch, and serves the next batch", async () => {
    let fail = true;
    const coalescer = new Coalescer<number, number>(async (inputs) => {
      if (fail) throw new Error("database unavailable");
      return inputs;
    });
    await expect(coalescer.submit(1)).rejects.toThrow("database unavailable");
    fail = false;
    expect(await coalescer.submit(2)).toBe(2);
  });

  it("caps batch sizes", async () => {
    const sizes: number[] = [];
    const coalescer = new Coalescer<number, number>(
      async (inputs) => {
        sizes.push(inputs.length);
        await new Promise((resolve) => setTimeout(resolve, 1));
        return inputs;
      },
      { maxBatch: 3, maxConcurrent: 1 },
    );
    await Promise.all(Array.from({ length: 10 }, (_, i) => coalescer.submit(i)));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(3);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(10);
  });
});
