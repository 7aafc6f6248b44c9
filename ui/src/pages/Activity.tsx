/** Activity (part 2 brings request history, charts and logs): what is running right now. */

import { Activity } from "lucide-react";
import { Badge, Card, EmptyState, PageHeader } from "../components/ui";
import { formatBytes } from "../lib/format";
import { useModelStates } from "../lib/live";

export default function ActivityPage() {
  const { models } = useModelStates();
  const resident = models.filter((m) => m.state === "loaded" || m.state === "loading");
  const busy = models.reduce((sum, m) => sum + m.in_flight, 0);
  return (
    <div className="mx-auto max-w-4xl space-y-5 p-4 md:p-6">
      <PageHeader
        title="Activity"
        description="What the server is doing now. Request history, speed charts and live logs arrive with the server's events API."
      />
      <div className="grid gap-4 sm:grid-cols-3">
        {[
          { label: "Requests in flight", value: busy },
          { label: "Models loaded", value: models.filter((m) => m.state === "loaded").length },
          { label: "Models configured", value: models.length },
        ].map((s) => (
          <Card key={s.label} className="p-4">
            <p className="text-sm text-ink-3">{s.label}</p>
            <p className="mt-1 text-2xl font-semibold tabular-nums">{s.value}</p>
          </Card>
        ))}
      </div>
      <Card className="p-5" aria-label="Resident models">
        <h2 className="mb-3 font-semibold">Resident models</h2>
        {resident.length === 0 ? (
          <EmptyState icon={<Activity className="size-8" />} title="Nothing is loaded">
            Models load on their first request, or from the Models page.
          </EmptyState>
        ) : (
          <ul className="divide-y divide-line">
            {resident.map((m) => (
              <li key={m.id} className="flex flex-wrap items-center justify-between gap-2 py-2.5 text-sm">
                <span className="font-medium">{m.id}</span>
                <span className="flex items-center gap-2 text-ink-3">
                  {formatBytes((m.memory?.ram_bytes ?? 0) + (m.memory?.vram_bytes ?? 0))}
                  <Badge tone={m.in_flight ? "info" : "neutral"}>{m.in_flight} in flight</Badge>
                </span>
              </li>
            ))}
          </ul>
        )}
      </Card>
    </div>
  );
}
