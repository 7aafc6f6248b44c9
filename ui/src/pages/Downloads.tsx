/** Downloads (part 2, once the server downloads models): what there is to do meanwhile. */

import { Download } from "lucide-react";
import { Link } from "wouter";
import { Card, EmptyState, PageHeader } from "../components/ui";

export default function DownloadsPage() {
  return (
    <div className="mx-auto max-w-4xl space-y-5 p-4 md:p-6">
      <PageHeader title="Downloads" description="Search Hugging Face and download GGUF files to this machine." />
      <Card className="p-5">
        <EmptyState icon={<Download className="size-8" />} title="Downloads are not in this server yet">
          The download manager (search, pause, resume, verify) arrives with a later release. Meanwhile, put GGUF files in a folder
          and add it on the <Link href="/setup" className="text-brand underline">Setup</Link> page. A Hugging Face token for
          gated models can already be stored in <Link href="/settings" className="text-brand underline">Settings</Link>.
        </EmptyState>
      </Card>
    </div>
  );
}
