from vidtrans.cli import main

main()
