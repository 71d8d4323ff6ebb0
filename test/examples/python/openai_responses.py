"""The official OpenAI Python client against the example server's /v1/responses (background mode).

Usage: openai_responses.py BASE_URL API_KEY MODE [ARGS]
  stream WORDS...          create in background with stream=True, read every event
  drop N WORDS...          the same, but drop the connection after N text deltas
  resume ID AFTER          retrieve(ID, stream=True, starting_after=AFTER), read every event
  cancel ID                cancel(ID)
Prints one JSON object per event (type, sequence_number, delta, response id and status).
"""
import json
import sys

from openai import OpenAI


def show(event):
    response = getattr(event, "response", None)
    print(
        json.dumps(
            {
                "type": event.type,
                "seq": event.sequence_number,
                "delta": getattr(event, "delta", None),
                "id": getattr(response, "id", None),
                "status": getattr(response, "status", None),
                "output_text": getattr(response, "output_text", None),
            }
        ),
        flush=True,
    )


def main():
    base, key, mode, *args = sys.argv[1:]
    client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    if mode in ("stream", "drop"):
        limit = int(args.pop(0)) if mode == "drop" else None
        stream = client.responses.create(
            model="sim-py",
            input=" ".join(args),
            background=True,
            stream=True,
            metadata={"delay_ms": "10"},
        )
        deltas = 0
        for event in stream:
            show(event)
            if event.type == "response.output_text.delta":
                deltas += 1
                if limit is not None and deltas >= limit:
                    stream.close()
                    break
    elif mode == "resume":
        for event in client.responses.retrieve(args[0], stream=True, starting_after=int(args[1])):
            show(event)
    elif mode == "cancel":
        response = client.responses.cancel(args[0])
        print(json.dumps({"type": "cancelled", "id": response.id, "status": response.status}), flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
