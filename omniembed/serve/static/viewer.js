// A small point-cloud viewer on a 2-D canvas: orthographic, points sorted back to front and coloured by depth
// (near warm, far dark blue — the same colours as the server's thumbnails). Drag to turn it; when the canvas has
// the focus, the arrow keys turn it too. No WebGL and no library: a few thousand points draw in a millisecond.
"use strict";

(function () {
  const NEAR = [214, 96, 38];
  const FAR = [40, 62, 140];
  const STEP = Math.PI / 16; // radians per arrow-key press

  class PointViewer {
    // canvas: the element to draw on; points: [[x, y, z], ...] in the unit sphere, y up.
    constructor(canvas, points) {
      this.canvas = canvas;
      this.points = points;
      this.yaw = -0.6;
      this.pitch = 0.35;
      this.drag = null;
      canvas.addEventListener("pointerdown", (e) => this.start(e));
      canvas.addEventListener("pointermove", (e) => this.move(e));
      canvas.addEventListener("pointerup", (e) => this.stop(e));
      canvas.addEventListener("pointercancel", (e) => this.stop(e));
      canvas.addEventListener("keydown", (e) => this.key(e));
      new ResizeObserver(() => this.draw()).observe(canvas);
      this.draw();
    }

    start(e) {
      this.drag = { x: e.clientX, y: e.clientY, yaw: this.yaw, pitch: this.pitch };
      this.canvas.setPointerCapture(e.pointerId);
    }

    move(e) {
      if (!this.drag) return;
      const scale = Math.PI / Math.max(80, this.canvas.clientWidth);
      this.yaw = this.drag.yaw + (e.clientX - this.drag.x) * scale;
      this.pitch = clamp(this.drag.pitch + (e.clientY - this.drag.y) * scale, -1.5, 1.5);
      this.draw();
    }

    stop(e) {
      this.drag = null;
      if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    }

    key(e) {
      const turns = { ArrowLeft: [-STEP, 0], ArrowRight: [STEP, 0], ArrowUp: [0, -STEP], ArrowDown: [0, STEP] };
      if (!(e.key in turns)) return;
      e.preventDefault(); // the arrows turn the cloud instead of scrolling the page
      this.yaw += turns[e.key][0];
      this.pitch = clamp(this.pitch + turns[e.key][1], -1.5, 1.5);
      this.draw();
    }

    draw() {
      const canvas = this.canvas;
      const ratio = window.devicePixelRatio || 1;
      const size = Math.max(1, Math.round(Math.min(canvas.clientWidth, canvas.clientHeight || canvas.clientWidth) * ratio));
      if (canvas.width !== size || canvas.height !== size) {
        canvas.width = size;
        canvas.height = size;
      }
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, size, size);
      const cy = Math.cos(this.yaw), sy = Math.sin(this.yaw), cp = Math.cos(this.pitch), sp = Math.sin(this.pitch);
      const projected = this.points.map(([x, y, z]) => {
        const x1 = cy * x + sy * z, z1 = -sy * x + cy * z; // yaw about y
        const y2 = cp * y - sp * z1, z2 = sp * y + cp * z1; // pitch about x
        return [x1, y2, z2];
      });
      projected.sort((a, b) => a[2] - b[2]); // far first, so near points are drawn over them
      const half = size / 2, reach = size * 0.46, dot = Math.max(1.5, size / 90);
      for (const [x, y, z] of projected) {
        const t = clamp((z + 1) / 2, 0, 1);
        ctx.fillStyle = `rgb(${mix(FAR[0], NEAR[0], t)},${mix(FAR[1], NEAR[1], t)},${mix(FAR[2], NEAR[2], t)})`;
        ctx.beginPath();
        ctx.arc(half + x * reach, half - y * reach, dot * (0.75 + 0.5 * t), 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }

  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }
  function mix(a, b, t) { return Math.round(a + (b - a) * t); }

  window.PointViewer = PointViewer;
})();
