/** The client's error, and how a non-2xx answer becomes one. Imports nothing from Node. */

/** A non-2xx answer or a stream the server refused; `status` is the HTTP status when known. */
export class ClientError extends Error {
  constructor(
    message: string,
    /** The HTTP status of the answer, when it is known. */
    readonly status: number | undefined,
    /** The server's error code (`JOB_NOT_FOUND`, ...), or the client's own: `HTTP_ERROR`, `STREAM_REFUSED`... */
    readonly code: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

/** The error of a non-2xx answer: the server's `{"error":{"code","message"}}` when it sent one. */
export async function errorFrom(res: { status: number; text(): Promise<string> }): Promise<ClientError> {
  let code = 'HTTP_ERROR';
  let message = `job-registry: the server answered ${res.status}`;
  try {
    const body = JSON.parse(await res.text()) as { error?: { code?: string; message?: string } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // a body that is not our JSON error: keep the status alone
  }
  return new ClientError(message, res.status, code);
}
