// The WeConnect word mark: two overlapping speech dots drawn in CSS.
export function Logo() {
  return (
    <div className="logo">
      <span className="logo-mark" aria-hidden="true">
        <span />
        <span />
      </span>
      <span className="logo-text">WeConnect</span>
    </div>
  );
}
