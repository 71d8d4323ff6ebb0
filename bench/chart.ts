/** Renders ratios against their targets as a standalone SVG bar chart (no dependencies). */
import type { Ratio } from './lib.js';

const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderChart(ratios: Array<Ratio & { section: string }>, subtitle: string): string {
  // Every bar shows value / target on a log scale, so "met" is always right of the 1x line, whichever
  // direction the ratio is better in.
  const rows = ratios.map((r) => ({
    ...r,
    score: r.higherIsBetter ? r.value / r.target : r.target / Math.max(r.value, 1e-9),
  }));
  const width = 1040;
  const left = 470;
  const barW = width - left - 90;
  const rowH = 26;
  const top = 64;
  const height = top + rows.length * rowH + 40;
  const min = 1 / 4;
  const max = 16;
  const x = (score: number): number =>
    left + (Math.log(Math.min(max, Math.max(min, score)) / min) / Math.log(max / min)) * barW;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  parts.push(
    `<text x="16" y="24" font-size="16" font-weight="600">job-registry: measured ratio / target (log scale; right of the line = target met)</text>`,
  );
  parts.push(`<text x="16" y="44" fill="#666">${esc(subtitle)}</text>`);
  for (const tick of [0.25, 0.5, 1, 2, 4, 8, 16]) {
    const tx = x(tick);
    parts.push(
      `<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${height - 30}" stroke="${tick === 1 ? '#333' : '#e5e5e5'}" stroke-width="${tick === 1 ? 1.5 : 1}"/>`,
    );
    parts.push(`<text x="${tx}" y="${height - 14}" text-anchor="middle" fill="#666">${tick}x</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const x0 = x(1);
    const x1 = x(r.score);
    const color = r.met ? '#2e9d5b' : '#d64545';
    parts.push(
      `<text x="${left - 8}" y="${y + 15}" text-anchor="end" font-size="11.5">${esc(clip(`${r.section}: ${r.name}`, 72))}</text>`,
    );
    parts.push(
      `<rect x="${Math.min(x0, x1)}" y="${y + 4}" width="${Math.max(2, Math.abs(x1 - x0))}" height="${rowH - 10}" fill="${color}" rx="2"/>`,
    );
    const label = `${r.value >= 100 ? r.value.toFixed(0) : r.value.toFixed(2)} (${r.higherIsBetter ? '>=' : '<='} ${r.target})`;
    parts.push(`<text x="${Math.max(x0, x1) + 6}" y="${y + 15}" fill="#333">${esc(label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
