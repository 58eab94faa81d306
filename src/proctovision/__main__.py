from proctovision.cli import main

main()
