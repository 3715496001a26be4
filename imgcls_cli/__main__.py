from imgcls_cli.cli.app import main

main()
