/** Cosine similarity of embedding vectors, for the embeddings tab's matrix. */

export function cosine(a: number[], b: number[]): number {
  if (a.length !== b.length) throw new Error(`vectors differ in length: ${a.length} and ${b.length}`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** Every pair's similarity: a symmetric matrix with ones on the diagonal. */
export function similarityMatrix(vectors: number[][]): number[][] {
  return vectors.map((a, i) => vectors.map((b, j) => (i === j ? 1 : cosine(a, b))));
}

/** Non-empty lines of a text area, trimmed. */
export function lines(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}
