/** Embeddings: how alike a few texts are, as a matrix of cosine similarities. */

import { useMutation } from "@tanstack/react-query";
import { Sigma } from "lucide-react";
import { useState } from "react";
import { ModelPicker } from "../../components/ModelPicker";
import { Button, Card, ErrorNote, Field, Textarea } from "../../components/ui";
import { post } from "../../lib/api";
import { lines, similarityMatrix } from "../../lib/similarity";
import { useRefreshModels } from "../../lib/live";
import { TabLayout, useWantedModel } from "./common";

interface EmbeddingList {
  data: { embedding: number[]; index: number }[];
  usage: { prompt_tokens: number };
}

const EXAMPLE = ["A man is eating food.", "A man is eating a piece of bread.", "The sky is blue today.", "A dog runs through the park."].join("\n");

/** A cell colour from similarity: transparent at 0 and below, full brand colour at 1. */
function shade(value: number): string {
  const strength = Math.max(0, Math.min(1, value));
  return `color-mix(in oklab, var(--brand) ${Math.round(strength * 70)}%, transparent)`;
}

export function EmbeddingsTab() {
  const [model, setModel] = useState(useWantedModel());
  const [text, setText] = useState(EXAMPLE);
  const refreshModels = useRefreshModels(); // the request may have loaded the model
  const compare = useMutation({
    onSettled: refreshModels,
    mutationFn: async (texts: string[]) => {
      const r = await post<EmbeddingList>("/v1/embeddings", { model, input: texts });
      const vectors = [...r.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
      return { texts, matrix: similarityMatrix(vectors), dims: vectors[0]?.length ?? 0, tokens: r.usage.prompt_tokens };
    },
  });
  const texts = lines(text);
  const result = compare.data;

  return (
    <TabLayout title="Embeddings" description="Embed a few texts and see how close each pair is (cosine similarity).">
      <Card className="space-y-4 p-4">
        <ModelPicker types={["embedding"]} value={model} onChange={setModel} className="max-w-sm" />
        <Field label="Texts, one per line" hint={`${texts.length} text${texts.length === 1 ? "" : "s"}`}>
          {(props) => <Textarea {...props} rows={5} value={text} onChange={(e) => setText(e.target.value)} />}
        </Field>
        <Button
          variant="primary"
          icon={<Sigma className="size-4" />}
          busy={compare.isPending}
          disabled={!model || texts.length < 2}
          onClick={() => compare.mutate(texts)}
        >
          Compare
        </Button>
        <ErrorNote error={compare.error} />
      </Card>
      {result && (
        <Card className="overflow-x-auto p-4">
          <p className="mb-3 text-sm text-ink-3">
            {result.dims} dimensions · {result.tokens} tokens
          </p>
          <table className="text-sm" aria-label="Similarity matrix">
            <thead>
              <tr>
                <th />
                {result.texts.map((_, j) => (
                  <th key={j} scope="col" className="px-2 pb-2 text-center font-medium text-ink-3">
                    {j + 1}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {result.matrix.map((row, i) => (
                <tr key={i}>
                  <th scope="row" className="max-w-72 py-1 pr-3 text-left font-normal">
                    <span className="mr-1.5 text-ink-3">{i + 1}</span>
                    {result.texts[i]}
                  </th>
                  {row.map((value, j) => (
                    <td key={j} className="p-0.5">
                      <div
                        className="min-w-14 rounded-md px-2 py-1.5 text-center font-mono text-xs tabular-nums"
                        style={{ background: shade(value) }}
                        title={`${result.texts[i]} ↔ ${result.texts[j]}`}
                      >
                        {value.toFixed(3)}
                      </div>
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
      )}
    </TabLayout>
  );
}
