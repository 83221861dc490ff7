// One WebSocket that reconnects with exponential backoff (0.5 s doubling to 30 s, with jitter),
// and can be paused (after a 401, until a new API key is saved).

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;

export class NotificationSocket {
  /** url: () => path with query; onFrame(frame); onOpen(); onState("connecting"|"live"|"offline"|"paused"). */
  constructor({ url, onFrame, onOpen, onState }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onState = onState;
    this.ws = null;
    this.wanted = false;
    this.paused = false;
    this.attempt = 0;
    this.timer = 0;
    window.addEventListener("online", () => this.reconnectNow());
  }

  start() {
    this.paused = false;
    if (this.wanted && (this.ws || this.timer)) return;
    this.wanted = true;
    this.open();
  }

  /** Reconnect at once (the API key changed). */
  restart() {
    if (!this.wanted) return;
    this.paused = false;
    this.close();
    this.open();
  }

  pause() {
    this.paused = true;
    this.close();
    this.onState("paused");
  }

  reconnectNow() {
    if (this.wanted && !this.paused && !this.ws) {
      this.attempt = 0;
      this.open();
    }
  }

  open() {
    clearTimeout(this.timer);
    this.timer = 0;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.url()}`);
    this.ws = ws;
    this.onState("connecting");
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.onState("live");
      this.onOpen();
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return; // replaced or closed on purpose
      this.ws = null;
      this.onState("offline");
      if (this.wanted && !this.paused) this.schedule();
    });
  }

  schedule() {
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => this.open(), delay);
  }

  close() {
    clearTimeout(this.timer);
    this.timer = 0;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
  }
}
