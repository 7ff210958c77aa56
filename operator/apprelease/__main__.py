from apprelease.cli.main import main

main()
