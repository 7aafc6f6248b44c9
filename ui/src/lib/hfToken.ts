/** The Hugging Face token the server sends to the hub: whether one is set (masked), and saving it. */

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiJson, post } from "./api";
import { toast } from "./toast";
import type { HfKey } from "./types";

const HF_KEY = ["settings", "hf"] as const;

/** `save.mutate(token)` stores it; `save.mutate("")` removes it. */
export function useHfToken() {
  const client = useQueryClient();
  const query = useQuery({ queryKey: HF_KEY, queryFn: () => apiJson<HfKey>("/api/settings/hf-api-key") });
  const save = useMutation({
    mutationFn: (value: string) => post<HfKey>("/api/settings/hf-api-key", { apiKey: value }),
    onSuccess: (answer, value) => {
      client.setQueryData(HF_KEY, answer);
      toast(value ? "Hugging Face token saved" : "Hugging Face token removed");
    },
  });
  return { query, save };
}
