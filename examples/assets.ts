/**
 * The dashboard page and its assets, read (and the project's client bundled for the browser) once at
 * startup. They hold no data, so they are served without a key.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Builds the dashboard's client bundle (the project's own client, bundled for the browser). */
async function bundleClient(): Promise<string> {
  const esbuild = await import('esbuild');
  const out = await esbuild.build({
    entryPoints: [join(here, '../src/client/index.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    write: false,
    minify: true,
  });
  return out.outputFiles[0]!.text;
}

/** Serves a path of the page when it is one (GET or HEAD); returns whether it did. */
export type AssetServer = (path: string, req: IncomingMessage, res: ServerResponse) => boolean;

/** Loads the page and its assets. */
export async function loadAssets(): Promise<AssetServer> {
  const [clientJs, page, dashboardJs, css] = await Promise.all([
    bundleClient(),
    readFile(join(here, 'public/index.html'), 'utf8'),
    readFile(join(here, 'public/dashboard.js'), 'utf8'),
    readFile(join(here, 'public/style.css'), 'utf8'),
  ]);
  const assets: Record<string, [string, string]> = {
    '/': ['text/html; charset=utf-8', page],
    '/index.html': ['text/html; charset=utf-8', page],
    '/assets/client.js': ['text/javascript; charset=utf-8', clientJs],
    '/assets/dashboard.js': ['text/javascript; charset=utf-8', dashboardJs],
    '/assets/style.css': ['text/css; charset=utf-8', css],
  };
  return (path, req, res) => {
    const asset = assets[path];
    if (asset === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    res.writeHead(200, {
      'Content-Type': asset[0],
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
      ...(path === '/' || path === '/index.html' ? { 'X-Frame-Options': 'DENY' } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : asset[1]);
    return true;
  };
}
