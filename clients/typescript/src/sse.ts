/** A Server-Sent Events parser (the WHATWG `text/event-stream` format) for fetch() bodies. */

export interface ServerSentEvent {
  /** The event's `id`, or the last one received before it (what `Last-Event-ID` resends). */
  id: string | undefined;
  /** `event:` field, `message` when absent. */
  event: string;
  data: string;
}

/**
 * Incremental parser: feed decoded text chunks, get complete events. Lines may end in CRLF, LF or
 * CR; `:` lines are comments (heartbeats); `retry:` sets `retry` (milliseconds).
 */
export class EventStreamParser {
  lastEventId: string | undefined;
  retry: number | undefined;
  private buffer = "";
  private data: string[] = [];
  private event = "";

  constructor(lastEventId?: string) {
    this.lastEventId = lastEventId;
  }

  push(chunk: string): ServerSentEvent[] {
    this.buffer += chunk;
    const events: ServerSentEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      // A lone CR at the end may be the first half of CRLF: wait for more text.
      if (match === null || (match[0] === "\r" && match.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  private line(line: string): ServerSentEvent | undefined {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number.parseInt(value, 10);
        break;
      default:
        break; // unknown fields are ignored
    }
    return undefined;
  }

  private dispatch(): ServerSentEvent | undefined {
    const data = this.data;
    const event = this.event;
    this.data = [];
    this.event = "";
    if (data.length === 0) return undefined;
    return { id: this.lastEventId, event: event || "message", data: data.join("\n") };
  }
}
