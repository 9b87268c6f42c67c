import { useRef, useState } from "react";

// Drag a rectangle on the photo; the chat then gets "region x1,y1 to x2,y2"
// in pixels of the original photo and runs the last request on that part.
// Props (injected globally by Chainlit): src (display copy), width and height
// (the original photo's size), prompt (what will run there, for the caption).
export default function RegionSelect() {
  const box = useRef(null);
  const [start, setStart] = useState(null);
  const [rect, setRect] = useState(null);
  const [sent, setSent] = useState(null);

  const toPhoto = (event) => {
    const area = box.current.getBoundingClientRect();
    const x = Math.min(Math.max(event.clientX - area.left, 0), area.width);
    const y = Math.min(Math.max(event.clientY - area.top, 0), area.height);
    return { x, y, sx: props.width / area.width, sy: props.height / area.height };
  };
  const down = (event) => {
    event.preventDefault();
    const p = toPhoto(event);
    setStart(p);
    setRect({ x: p.x, y: p.y, w: 0, h: 0 });
  };
  const move = (event) => {
    if (!start) return;
    const p = toPhoto(event);
    setRect({
      x: Math.min(start.x, p.x),
      y: Math.min(start.y, p.y),
      w: Math.abs(p.x - start.x),
      h: Math.abs(p.y - start.y),
    });
  };
  const up = () => {
    if (!start || !rect) return;
    setStart(null);
    if (rect.w < 4 || rect.h < 4) {
      setRect(null);
      return;
    }
    const x1 = Math.round(rect.x * start.sx);
    const y1 = Math.round(rect.y * start.sy);
    const x2 = Math.round((rect.x + rect.w) * start.sx);
    const y2 = Math.round((rect.y + rect.h) * start.sy);
    const text = `region ${x1},${y1} to ${x2},${y2}`;
    setSent(text);
    sendUserMessage(text);
  };

  return (
    <div className="flex flex-col gap-2">
      <div
        ref={box}
        id="region-select"
        className="relative select-none cursor-crosshair"
        style={{ maxWidth: "100%", touchAction: "none" }}
        onMouseDown={down}
        onMouseMove={move}
        onMouseUp={up}
        onMouseLeave={up}
      >
        <img
          src={props.src}
          alt="drag a rectangle on the photo"
          draggable={false}
          className="block w-full h-auto"
        />
        {rect && (
          <div
            className="absolute border-2 border-primary bg-primary/20"
            style={{ left: rect.x, top: rect.y, width: rect.w, height: rect.h }}
          />
        )}
      </div>
      <div className="text-sm text-muted-foreground">
        {sent
          ? `Sent: ${sent}`
          : `Drag a rectangle: ${props.prompt || "the last request"} runs there.`}
      </div>
    </div>
  );
}
