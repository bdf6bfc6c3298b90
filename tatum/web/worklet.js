// Plays the server's PCM: blocks of interleaved float32 stereo, each with the index of its first frame.
// A ring of 8 s; playback starts once 150 ms are buffered; a gap is filled with silence, an overlap skipped.
class TatumPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = 48000 * 8;
    this.left = new Float32Array(this.size);
    this.right = new Float32Array(this.size);
    this.prebuffer = 48000 * 0.15;
    this.reset();
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.reset) this.reset();
      else this.push(m.first, m.data);
    };
  }
  reset() {
    this.read = -1; this.write = -1; this.started = false; this.underruns = 0; this.dry = false;
    this.received = 0; this.sinceReport = 0;
  }
  push(first, data) {
    const n = data.length / 2;
    this.received += n;
    if (this.write < 0) { this.read = first; this.write = first; }
    if (first + n <= this.write) return;                // all of it already here
    let skip = Math.max(0, this.write - first);
    for (let t = this.write; t < first; t++) {          // a gap: silence
      this.left[t % this.size] = 0; this.right[t % this.size] = 0;
    }
    for (let i = skip; i < n; i++) {
      const t = first + i;
      this.left[t % this.size] = data[2 * i];
      this.right[t % this.size] = data[2 * i + 1];
    }
    this.write = first + n;
    if (this.write - this.read > this.size) this.read = this.write - this.size;
  }
  process(inputs, outputs) {
    const out = outputs[0];
    const n = out[0].length;
    if (!this.started && this.write >= 0 && this.write - this.read >= this.prebuffer) this.started = true;
    for (let i = 0; i < n; i++) {
      if (this.started && this.read < this.write) {
        const k = this.read % this.size;
        out[0][i] = this.left[k];
        if (out.length > 1 && out[1]) out[1][i] = this.right[k];
        this.read++;
        this.dry = false;
      } else {
        out[0][i] = 0;
        if (out.length > 1 && out[1]) out[1][i] = 0;
        if (this.started && !this.dry) { this.underruns++; this.dry = true; }
      }
    }
    this.sinceReport += n;
    if (this.sinceReport >= 4800) {
      this.sinceReport = 0;
      this.port.postMessage({ played: this.read, buffered: Math.max(0, this.write - this.read),
                              underruns: this.underruns, received: this.received, started: this.started });
    }
    return true;
  }
}
registerProcessor("tatum-player", TatumPlayer);
