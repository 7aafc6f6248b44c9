/** One config key as a form control: its meaning and valid range beside it, its error under it. */

import { useEffect, useId, useState } from "react";
import { cx, Input, Select, Switch, Textarea } from "../../components/ui";
import { defaultText, textOf, valueOf, type FieldSpec } from "../../lib/schema";

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function FieldControl({
  field,
  value,
  error,
  onChange,
  path,
}: {
  field: FieldSpec;
  value: unknown;
  error?: string;
  onChange: (value: unknown) => void;
  /** The key path, for tests and for jumping to an error (`models.0.temperature`). */
  path: string;
}) {
  const id = useId();
  // The typed text is kept as typed ("0." on the way to "0.5"); it follows the file when the
  // file changes some other way (the YAML tab, discard).
  const [text, setText] = useState(textOf(value));
  useEffect(() => {
    setText((typed) => (same(valueOf(field, typed), value) ? typed : textOf(value)));
  }, [value, field]);

  const change = (typed: string) => {
    setText(typed);
    onChange(valueOf(field, typed));
  };
  const described = `${id}-about`;
  const common = {
    id,
    "aria-describedby": described,
    "aria-invalid": error ? true : undefined,
    "data-path": path,
  };

  let control;
  if (field.control === "switch") {
    const on = value === undefined ? field.default === true : value === true;
    control = (
      <Switch
        label={field.label}
        checked={on}
        onChange={(next) => onChange(next === field.default ? undefined : next)}
      />
    );
  } else if (field.control === "choice") {
    control = (
      <Select {...common} value={text} onChange={(e) => change(e.target.value)}>
        {field.optional && <option value="">{defaultText(field) || "not set"}</option>}
        {field.choices.map((c) => (
          <option key={c} value={c}>
            {c}
          </option>
        ))}
      </Select>
    );
  } else if (field.control === "multiline") {
    control = (
      <Textarea
        {...common}
        rows={4}
        spellCheck={false}
        className="font-mono text-[13px]"
        value={text}
        placeholder={defaultText(field)}
        onChange={(e) => change(e.target.value)}
      />
    );
  } else {
    const numeric = field.control === "integer" || field.control === "number";
    control = (
      <Input
        {...common}
        type={numeric ? "number" : "text"}
        inputMode={field.numeric ? "decimal" : undefined}
        step={field.control === "integer" ? 1 : numeric ? "any" : undefined}
        min={numeric ? field.min : undefined}
        max={numeric ? field.max : undefined}
        spellCheck={false}
        value={text}
        placeholder={defaultText(field)}
        onChange={(e) => change(e.target.value)}
        className={cx(field.key === "model" || field.key === "mmproj" ? "font-mono text-[13px]" : "")}
      />
    );
  }

  return (
    <div data-field={field.key} className={cx(field.control === "multiline" || field.key === "model" ? "sm:col-span-2" : "")}>
      {field.control !== "switch" && (
        <div className="mb-1 flex items-baseline justify-between gap-2">
          <label htmlFor={id} className="text-[13px] font-medium text-ink-2">
            {field.label}
            <code className="ml-1.5 font-mono text-[11px] font-normal text-ink-3">{field.key}</code>
          </label>
          {field.range && <span className="shrink-0 text-[11px] text-ink-3 tabular-nums">{field.range}</span>}
        </div>
      )}
      {control}
      <p id={described} className={cx("mt-1 text-xs", error ? "text-bad" : "text-ink-3")} role={error ? "alert" : undefined}>
        {error ?? field.description}
      </p>
    </div>
  );
}
