/**
 * Leak check for native-touching tests: every test in a file that calls `useLeakCheck()` must
 * leave the live tensor count where it found it.
 */
import { afterEach, beforeEach, expect } from "vitest";
import { liveTensorCount } from "../../src/tensor/index.js";

export function useLeakCheck(): void {
  let before = 0;
  beforeEach(() => {
    before = liveTensorCount();
  });
  afterEach(() => {
    expect(liveTensorCount(), "live tensors after the test").toBe(before);
  });
}
