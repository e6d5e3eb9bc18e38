/**
 * One choice's text as tokens arrive: EOS ids dropped, special tokens skipped (as `emlab eval` decodes
 * answers), cut before the first stop string. Streaming emits only text that can no longer change: a
 * trailing incomplete UTF-8 character and the last (longest stop - 1) characters are held back until
 * the next token or the end, so the streamed deltas always concatenate to the final text.
 */
import type { ChatTokenizer } from "../tokenizer/tokenizer.js";

export class ChoiceText {
  private readonly ids: number[] = [];
  private sent = 0;
  private readonly holdBack: number;
  text = "";
  stopped = false;

  constructor(
    private readonly tokenizer: ChatTokenizer,
    private readonly eos: ReadonlySet<number>,
    private readonly stops: readonly string[],
  ) {
    this.holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** Adds a token; returns the text that may be streamed now. */
  push(token: number): string {
    if (this.stopped) return "";
    if (!this.eos.has(token)) this.ids.push(token);
    let full = this.tokenizer.decode(this.ids, { skipSpecialTokens: true });
    let cut = -1;
    for (const stop of this.stops) {
      const at = full.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      full = full.slice(0, cut);
      this.stopped = true;
    }
    this.text = full;
    if (this.stopped) return this.flush();
    let safe = full.length;
    while (safe > 0 && full[safe - 1] === "\uFFFD") safe--;
    safe = Math.max(this.sent, safe - this.holdBack);
    const delta = full.slice(this.sent, safe);
    this.sent = safe;
    return delta;
  }

  /** The rest of the text (at the end of the choice). */
  flush(): string {
    const delta = this.text.slice(this.sent);
    this.sent = this.text.length;
    return delta;
  }
}
