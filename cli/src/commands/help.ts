import { Args, Command, loadHelpClass } from '@oclif/core';

export default class HelpCommand extends Command {
  static override summary = 'Show help for cloudphone, a topic or a command';

  static override examples = [
    { description: 'Topics, commands, environment variables and exit codes.', command: '<%= config.bin %> help' },
    { description: 'Help for one command.', command: '<%= config.bin %> help users list' },
  ];

  static override args = {
    command: Args.string({ description: 'The topic or command, words separated by spaces.' }),
  };

  static override strict = false;

  async run(): Promise<void> {
    const { argv } = await this.parse(HelpCommand);
    const Help = await loadHelpClass(this.config);
    const options = this.config.pjson.oclif.helpOptions ?? this.config.pjson.helpOptions;
    await new Help(this.config, options).showHelp(argv as string[]);
  }
}
