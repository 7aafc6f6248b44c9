/** Rerank: documents ordered by relevance to a query, with their scores. */

import { useMutation } from "@tanstack/react-query";
import { ListOrdered } from "lucide-react";
import { useState } from "react";
import { ModelPicker } from "../../components/ModelPicker";
import { Button, Card, ErrorNote, Field, Input, Meter, Textarea } from "../../components/ui";
import { post } from "../../lib/api";
import { lines } from "../../lib/similarity";
import { useRefreshModels } from "../../lib/live";
import { TabLayout, useWantedModel } from "./common";

interface RerankAnswer {
  results: { index: number; relevance_score: number }[];
  method?: string;
}

const DOCUMENTS = ["A man is eating a piece of bread.", "The sky is blue today.", "A dog runs through the park.", "Bread is baked from flour, water and yeast."].join("\n");

export function RerankTab() {
  const [model, setModel] = useState(useWantedModel());
  const [query, setQuery] = useState("What does the man eat?");
  const [text, setText] = useState(DOCUMENTS);
  const refreshModels = useRefreshModels(); // the request may have loaded the model
  const rank = useMutation({
    onSettled: refreshModels,
    mutationFn: async ({ query, documents }: { query: string; documents: string[] }) => {
      const r = await post<RerankAnswer>("/v1/rerank", { model, query, documents });
      return { documents, results: r.results, method: r.method };
    },
  });
  const documents = lines(text);
  const result = rank.data;
  const scores = result?.results.map((r) => r.relevance_score) ?? [];
  const low = Math.min(0, ...scores);
  const high = Math.max(...scores, 1e-9);

  return (
    <TabLayout
      title="Rerank"
      description="Order documents by how well they answer a query. Rerankers score each pair; embedding models rank by cosine similarity."
    >
      <Card className="space-y-4 p-4">
        <ModelPicker types={["reranker", "embedding"]} value={model} onChange={setModel} className="max-w-sm" />
        <Field label="Query">{(props) => <Input {...props} value={query} onChange={(e) => setQuery(e.target.value)} />}</Field>
        <Field label="Documents, one per line" hint={`${documents.length} document${documents.length === 1 ? "" : "s"}`}>
          {(props) => <Textarea {...props} rows={5} value={text} onChange={(e) => setText(e.target.value)} />}
        </Field>
        <Button
          variant="primary"
          icon={<ListOrdered className="size-4" />}
          busy={rank.isPending}
          disabled={!model || !query.trim() || documents.length === 0}
          onClick={() => rank.mutate({ query: query.trim(), documents })}
        >
          Rank
        </Button>
        <ErrorNote error={rank.error} />
      </Card>
      {result && (
        <Card className="p-4">
          {result.method && <p className="mb-3 text-sm text-ink-3">Method: {result.method}</p>}
          <ol className="space-y-3" aria-label="Ranked documents">
            {result.results.map((r, rank) => (
              <li key={r.index} className="flex items-center gap-3">
                <span className="w-6 text-right text-sm font-semibold text-ink-3 tabular-nums">{rank + 1}</span>
                <div className="min-w-0 flex-1">
                  <p className="truncate text-sm" title={result.documents[r.index]}>
                    {result.documents[r.index]}
                  </p>
                  <Meter label="Relevance" max={high - low} segments={[{ value: r.relevance_score - low, tone: "bg-brand" }]} className="mt-1" />
                </div>
                <span className="w-16 text-right font-mono text-xs tabular-nums">{r.relevance_score.toFixed(3)}</span>
              </li>
            ))}
          </ol>
        </Card>
      )}
    </TabLayout>
  );
}
