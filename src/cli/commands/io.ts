// What a command may print: injected so tests can capture output without spawning a process.
export interface CommandIo {
  stdout(line: string): void;
  stderr(line: string): void;
  /** Whether stderr is an interactive terminal (progress bars draw only then). */
  readonly interactive: boolean;
}
