"""Real-time adapters around the stream contract (DESIGN §6).

Everything here knows only `chunk, state = stream.generate_chunk(state, conditioning, sampling,
chunk_s, live=notes)`, the way Magenta RT's server is handed its system: the scheduler that calls it
ahead of time, MIDI ports, DAW sync, audio, the browser server. `MockStream` stands in for a model in
tests. Nothing here is imported by `import tatum`; the optional `realtime` extra holds what the
ports and the server need (python-rtmidi, aalink, fastapi, uvicorn).
"""
