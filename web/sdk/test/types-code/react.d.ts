// React's own types are not this package's to check: its hooks as `any`.
declare module 'react';
