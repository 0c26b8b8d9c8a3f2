/** A seeded pseudo-random sequence in [0, 1), so a failing run can be repeated with the same seed. */
export function seededRandom(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}
